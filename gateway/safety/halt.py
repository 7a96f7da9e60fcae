"""The halt: the gateway's circuit breaker and kill switch state.

Errors raised here:

    HaltStateUnreadable   the persisted state cannot be trusted (restore() turns it into a halt)
    HaltStateWriteError   a halt/resume could not be made durable (the in-memory state is safe)
    ResumeRefused         code cooldown_active | trigger_active (HTTP 409, with retry_after_s)
    ResumeForbidden       force without the right auth code (HTTP 403)

Decisions:

- A halt keeps its first reason, trigger and `since`; a later halt is recorded in the history as
  `halt_repeated`. A kill switch while halted still sets `kill_switch` (cancel-all happened);
  trigger kill_switch always implies kill_switch=True.
- The resume cooldown runs from the first halt's `since`; a repeated halt does not restart it.
- `blocked_count` counts orders blocked since the halt in force began; resume records it in the
  history and sets it back to 0.
- Stopping is fail-safe: halt() changes the in-memory state before writing it, so a disk error
  still leaves the gateway halted (and raises HaltStateWriteError). resume() writes first, so a
  disk error leaves the gateway halted.
- resume() while not halted is a no-op (returns None, records nothing), except that a forced
  resume with a wrong auth code is still refused.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from gateway.safety.halt_state import (
    SCHEMA_VERSION,
    HaltHistoryEntry,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltStateUnreadable,
    HaltTrigger,
    HistoryKind,
)

__all__ = [
    "EMERGENCY_MEASURES",
    "SCHEMA_VERSION",
    "HaltEvent",
    "HaltEventKind",
    "HaltHistoryEntry",
    "HaltManager",
    "HaltRecord",
    "HaltState",
    "HaltStateStore",
    "HaltStateUnreadable",
    "HaltStateWriteError",
    "HaltTrigger",
    "ResumeForbidden",
    "ResumeRefused",
    "evaluate_emergency",
]

logger = logging.getLogger(__name__)

HaltEventKind = Literal["halt", "halt_repeated", "resume", "forced_resume", "blocked"]

#: The measures with an emergency threshold, in the order they are checked.
EMERGENCY_MEASURES: Final = (
    HaltTrigger.DAILY_LOSS,
    HaltTrigger.DRAWDOWN,
    HaltTrigger.PORTFOLIO_HEAT,
)


class ResumeRefused(Exception):
    """Resume refused for now (HTTP 409): `code` is cooldown_active or trigger_active."""

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return body


class ResumeForbidden(Exception):
    """A forced resume without the right auth code, or with none configured (HTTP 403)."""


class HaltStateWriteError(Exception):
    """The halt state could not be written durably; the message says which change."""


@dataclass(frozen=True)
class HaltEvent:
    """What listeners hear: every halt, repeated halt, resume, forced resume and blocked order."""

    kind: HaltEventKind
    at: datetime
    by: str
    record: HaltRecord | None
    summary: dict[str, Any] | None
    detail: str = ""


def evaluate_emergency(
    measures: Mapping[str, float], thresholds: Mapping[str, float]
) -> tuple[HaltTrigger, float, float] | None:
    """The first emergency breached (measure >= threshold), as (trigger, measure, threshold).

    Checks daily_loss, drawdown, portfolio_heat in that order; a measure or threshold that is
    absent (unknown) is not checked. A non-finite value is a caller bug and raises ValueError.
    """
    for trigger in EMERGENCY_MEASURES:
        key = trigger.value
        if key not in measures or key not in thresholds:
            continue
        measure, threshold = float(measures[key]), float(thresholds[key])
        if not math.isfinite(measure):
            raise ValueError(f"measure {key} must be finite, got {measure!r}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold {key} must be finite, got {threshold!r}")
        if measure >= threshold:
            return trigger, measure, threshold
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HaltManager:
    """Holds the halt state, writes it durably, and tells listeners about every change."""

    def __init__(
        self,
        store: HaltStateStore,
        *,
        resume_cooldown_s: float,
        clock: Callable[[], datetime] = _utc_now,
        listeners: Sequence[Callable[[HaltEvent], None]] = (),
        history_limit: int = 1000,
    ) -> None:
        if not math.isfinite(resume_cooldown_s) or resume_cooldown_s < 0:
            raise ValueError(f"resume_cooldown_s must be >= 0, got {resume_cooldown_s!r}")
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit!r}")
        self._store = store
        self._cooldown = timedelta(seconds=resume_cooldown_s)
        self._clock = clock
        self._listeners = list(listeners)
        self._history_limit = history_limit
        self._state = HaltState()
        self._restored = False

    # -- start -----------------------------------------------------------------------------

    def restore(self) -> None:
        """Load the persisted state; an unreadable one starts the gateway HALTED.

        Every other method restores first if this was not called, so nothing can overwrite a
        persisted halt with a fresh state. The unreadable file is kept beside the new one
        (halt_state.json.unreadable-<time>); HaltStateWriteError if the fresh state cannot be
        written (the manager is halted in memory all the same).
        """
        self._restored = True
        try:
            loaded = self._store.load()
        except HaltStateUnreadable as exc:
            now = self._now()
            moved = self._store.quarantine(now)
            kept = f" (kept as {moved.name})" if moved is not None else ""
            logger.critical("halt state unreadable, starting HALTED: %s%s", exc.reason, kept)
            self._state = HaltState()
            self.halt(
                f"halt state unreadable: {exc.reason}{kept}",
                HaltTrigger.STATE_UNREADABLE,
                by="restore",
            )
            return
        self._state = loaded if loaded is not None else HaltState()
        if self._state.current is not None:
            logger.critical("restored HALTED: %s", self._state.current.reason)

    # -- queries ---------------------------------------------------------------------------

    @property
    def is_halted(self) -> bool:
        self._ensure_restored()
        return self._state.current is not None

    @property
    def current(self) -> HaltRecord | None:
        self._ensure_restored()
        return self._state.current

    @property
    def blocked_count(self) -> int:
        self._ensure_restored()
        return self._state.blocked

    @property
    def history(self) -> list[HaltHistoryEntry]:
        self._ensure_restored()
        return list(self._state.history)

    @property
    def last_resume_at(self) -> datetime | None:
        self._ensure_restored()
        return self._state.last_resume_at

    @property
    def resume_allowed_at(self) -> datetime | None:
        """When the cooldown of the halt in force ends (None when not halted)."""
        current = self.current
        return None if current is None else current.since + self._cooldown

    def summary(self) -> dict[str, Any] | None:
        """The status's `halt` object, or None when not halted."""
        current = self.current
        if current is None:
            return None
        return {
            "reason": current.reason,
            "trigger": current.trigger.value,
            "since": current.since.isoformat(),
            "resume_allowed_at": (current.since + self._cooldown).isoformat(),
            "kill_switch": current.kill_switch,
            "blocked": self._state.blocked,
            "by": current.by,
        }

    # -- changes ---------------------------------------------------------------------------

    def halt(
        self,
        reason: str,
        trigger: HaltTrigger | str,
        *,
        by: str,
        kill_switch: bool = False,
        measure: float | None = None,
        threshold: float | None = None,
    ) -> HaltRecord:
        """Halt (durably before returning) and return the halt in force.

        While halted, the first reason and trigger stay; the call is recorded as halt_repeated,
        and a kill switch marks the halt in force as a kill.
        """
        reason = _required_text(reason, "reason")
        by = _required_text(by, "by")
        try:
            trigger = HaltTrigger(trigger)
        except ValueError:
            choices = ", ".join(t.value for t in HaltTrigger)
            raise ValueError(f"trigger must be one of {choices}, got {trigger!r}") from None
        for name, value in (("measure", measure), ("threshold", threshold)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        kill_switch = kill_switch or trigger is HaltTrigger.KILL_SWITCH
        self._ensure_restored()
        now = self._now()
        current = self._state.current
        kind: HistoryKind
        if current is None:
            kind = "halt"
            record = HaltRecord(reason, trigger, now, kill_switch, by, measure, threshold)
            blocked = 0
        else:
            kind = "halt_repeated"
            record = replace(current, kill_switch=True) if kill_switch else current
            blocked = self._state.blocked
        entry = HaltHistoryEntry(
            kind=kind,
            at=now,
            by=by,
            reason=reason,
            trigger=trigger,
            kill_switch=kill_switch,
            measure=measure,
            threshold=threshold,
        )
        state = replace(self._state, current=record, blocked=blocked, history=self._append(entry))
        # Memory first: a failing disk must not leave the gateway trading.
        self._state = state
        error = self._try_save(state)
        if kind == "halt":
            logger.critical("HALTED (%s) by %s: %s", trigger.value, by, reason)
        else:
            logger.critical("halt repeated (%s) by %s: %s", trigger.value, by, reason)
        self._emit(HaltEvent(kind, now, by, record, self.summary(), detail=reason))
        if error is not None:
            raise HaltStateWriteError(f"halt not written to {self._store.path}: {error}") from error
        return record

    def record_blocked(self, detail: str) -> None:
        """Count one order blocked by the halt; the count survives a restart.

        A failed write is logged, not raised: the order is blocked either way, and the next
        successful write carries the count.
        """
        self._ensure_restored()
        if self._state.current is None:
            logger.warning("order blocked while not halted: %s", detail)
        state = replace(self._state, blocked=self._state.blocked + 1)
        self._state = state
        error = self._try_save(state)
        if error is not None:
            logger.error("blocked count not written to %s: %s", self._store.path, error)
        self._emit(
            HaltEvent(
                "blocked", self._now(), "gateway", state.current, self.summary(), detail=detail
            )
        )

    def resume(
        self,
        *,
        by: str,
        force: bool = False,
        auth_code: str | None = None,
        expected_auth_code: str | None = None,
        trigger_active: Callable[[HaltRecord], bool] | None = None,
    ) -> None:
        """Resume trading, durably before returning; a no-op when not halted.

        Without force: ResumeRefused(cooldown_active, retry_after_s) before the cooldown ends,
        then ResumeRefused(trigger_active) while `trigger_active(record)` is true (or raises).
        With force: ResumeForbidden unless `auth_code` matches a configured
        `expected_auth_code`; then both checks are overridden and the history says which.
        """
        by = _required_text(by, "by")
        if force:
            _check_auth_code(auth_code, expected_auth_code, by)
        self._ensure_restored()
        record = self._state.current
        if record is None:
            logger.info("resume by %s ignored: not halted", by)
            return
        now = self._now()
        left = (record.since + self._cooldown - now).total_seconds()
        active, why_active = _trigger_still_active(record, trigger_active)
        kind: HistoryKind
        if force:
            overrode = []
            if left > 0:
                overrode.append(f"cooldown_active ({left:.1f}s left)")
            if active:
                overrode.append(f"trigger_active ({why_active})")
            kind = "forced_resume"
            detail = "overrode: " + (", ".join(overrode) if overrode else "nothing")
        else:
            if left > 0:
                allowed = (record.since + self._cooldown).isoformat()
                raise ResumeRefused(
                    "cooldown_active",
                    f"resume is allowed from {allowed} ({left:.1f}s from now)",
                    retry_after_s=left,
                )
            if active:
                raise ResumeRefused(
                    "trigger_active",
                    f"the {record.trigger.value} trigger is still active: {why_active}",
                )
            kind = "resume"
            detail = ""
        entry = HaltHistoryEntry(
            kind=kind,
            at=now,
            by=by,
            reason=record.reason,
            trigger=record.trigger,
            kill_switch=record.kill_switch,
            measure=record.measure,
            threshold=record.threshold,
            blocked=self._state.blocked,
            detail=detail,
        )
        state = HaltState(current=None, blocked=0, history=self._append(entry), last_resume_at=now)
        # Disk first: if the resume cannot be made durable the gateway stays halted.
        error = self._try_save(state)
        if error is not None:
            raise HaltStateWriteError(
                f"resume not written to {self._store.path}: {error}"
            ) from error
        self._state = state
        if kind == "forced_resume":
            logger.warning("FORCED resume by %s of %r: %s", by, record.reason, detail)
        else:
            logger.warning("resumed by %s after %r", by, record.reason)
        self._emit(HaltEvent(kind, now, by, record, None, detail=detail))

    # TEMPORARY (replaced by the halt work on its branch): write the state again.
    @property
    def persisted(self) -> bool:
        return True

    def retry_persist(self) -> bool:
        return self._try_save(self._state) is None

    # -- internals -------------------------------------------------------------------------

    def _ensure_restored(self) -> None:
        if not self._restored:
            self.restore()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"clock must return an aware datetime, got {now!r}")
        return now.astimezone(UTC)

    def _append(self, entry: HaltHistoryEntry) -> tuple[HaltHistoryEntry, ...]:
        return (*self._state.history, entry)[-self._history_limit :]

    def _try_save(self, state: HaltState) -> Exception | None:
        try:
            self._store.save(state)
        except (OSError, ValueError) as exc:
            logger.critical("could not write halt state to %s: %s", self._store.path, exc)
            return exc
        return None

    def _emit(self, event: HaltEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A broken journal or alert hook must never undo or stop a halt.
                logger.exception("halt listener %r failed on %s", listener, event.kind)


def _required_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _check_auth_code(given: str | None, expected: str | None, by: str) -> None:
    if not expected:
        logger.warning("forced resume by %s refused: no auth code is configured", by)
        raise ResumeForbidden("forced resume is disabled: no resume auth code is configured")
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        logger.warning("forced resume by %s refused: wrong or missing auth code", by)
        raise ResumeForbidden("forced resume needs the right auth_code")


def _trigger_still_active(
    record: HaltRecord, trigger_active: Callable[[HaltRecord], bool] | None
) -> tuple[bool, str]:
    if trigger_active is None:
        return False, ""
    try:
        active = trigger_active(record)
    except Exception as exc:
        # Cannot tell whether the measure recovered: stay on the safe side.
        logger.exception("trigger check for %s failed", record.trigger.value)
        return True, f"the check failed: {type(exc).__name__}: {exc}"
    if not active:
        return False, ""
    if record.measure is not None and record.threshold is not None:
        return True, (
            f"still past its emergency threshold (tripped at {record.measure:g}"
            f" >= {record.threshold:g})"
        )
    return True, "still past its emergency threshold"
