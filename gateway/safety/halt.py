"""The halt: the gateway's circuit breaker and kill switch state.

Errors raised here:

    HaltStateUnreadable   the persisted state cannot be trusted (restore() turns it into a halt)
    HaltStateWriteError   a resume could not be made durable (the gateway stays halted)
    ResumeRefused         code cooldown_active | trigger_active (HTTP 409, with retry_after_s)
    ResumeForbidden       force without the right auth code (HTTP 403)

Decisions:

- A halt keeps its first reason, trigger and `since`; a later halt is heard by listeners as
  `halt_repeated`. A kill switch while halted still sets `kill_switch` (cancel-all happened);
  trigger kill_switch always implies kill_switch=True.
- The resume cooldown runs from the first halt's `since`; a repeated halt does not restart it.
- The file holds only the halt in force and the last resume, and is written only when that
  changes: the first halt, the kill flag turning true, a resume. A repeated halt that changes
  nothing writes nothing. Listeners hear every halt, repeated halt, resume and forced resume
  (the service journals them: the history lives in the journal).
- The status's `halt.blocked` counts signals blocked since the halt in force began, in memory
  only: record_blocked does no I/O and emits nothing (it runs once per blocked signal). The
  resume's event carries the count.
- Stopping is fail-safe: halt() changes the in-memory state before writing it and never raises
  for a failed write; it marks the state not `persisted`, logs CRITICAL, and `retry_persist()`
  writes the state again. resume() writes first, so a disk error leaves the gateway halted and
  raises HaltStateWriteError.
- resume() while not halted is a no-op (returns None, emits nothing), except that a forced
  resume with a wrong auth code is still refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.safety.halt_resume import (
    ResumeForbidden,
    ResumeRefused,
    check_auth_code,
    judge_resume,
)
from gateway.safety.halt_state import (
    SCHEMA_VERSION,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltStateUnreadable,
    HaltTrigger,
    requested_halt,
    required_text,
)

__all__ = [
    "SCHEMA_VERSION",
    "HaltEvent",
    "HaltEventKind",
    "HaltManager",
    "HaltRecord",
    "HaltState",
    "HaltStateStore",
    "HaltStateUnreadable",
    "HaltStateWriteError",
    "HaltTrigger",
    "ResumeForbidden",
    "ResumeRefused",
]

logger = logging.getLogger(__name__)

HaltEventKind = Literal["halt", "halt_repeated", "resume", "forced_resume"]


class HaltStateWriteError(Exception):
    """The halt state could not be written durably; the message says which change."""


@dataclass(frozen=True)
class HaltEvent:
    """What listeners hear: every halt, repeated halt, resume and forced resume.

    `record` is the halt in force (for a resume: the halt that ended). `requested` is what a
    halt call asked for (for a repeated halt it differs from `record`, which keeps the first
    reason); None for resumes. `blocked` is, for a resume, how many signals the ended halt
    blocked. `detail`: the halt's reason; for a repeated halt "trigger: reason"; for a resume
    the blocked count and what a forced resume overrode.
    """

    kind: HaltEventKind
    at: datetime
    by: str
    record: HaltRecord | None
    summary: dict[str, Any] | None
    detail: str = ""
    requested: HaltRecord | None = None
    blocked: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HaltManager:
    """Holds the halt state, writes it durably on each change, and tells listeners of each."""

    def __init__(
        self,
        store: HaltStateStore,
        *,
        resume_cooldown_s: float,
        clock: Callable[[], datetime] = _utc_now,
        listeners: Sequence[Callable[[HaltEvent], None]] = (),
    ) -> None:
        if not math.isfinite(resume_cooldown_s) or resume_cooldown_s < 0:
            raise ValueError(f"resume_cooldown_s must be >= 0, got {resume_cooldown_s!r}")
        self._store = store
        self._cooldown = timedelta(seconds=resume_cooldown_s)
        self._clock = clock
        self._listeners = list(listeners)
        self._state = HaltState()  # what is on disk, or must be once a write succeeds
        self._blocked = 0
        self._persisted = True  # False while the file may not hold the in-memory state
        self._restored = False

    # -- start -----------------------------------------------------------------------------

    def restore(self) -> None:
        """Load the persisted state; an unreadable one starts the gateway HALTED.

        Every other method restores first if this was not called, so nothing can overwrite a
        persisted halt with a fresh state. The unreadable file is kept beside the new one
        (halt_state.json.unreadable-<time>). A fresh state that cannot be written leaves the
        manager halted in memory with `persisted` False.
        """
        self._restored = True
        self._blocked = 0
        self._persisted = True
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
    def persisted(self) -> bool:
        """False while the in-memory state is not known to be on disk (a write failed)."""
        self._ensure_restored()
        return self._persisted

    def summary_resume_at(self) -> str | None:
        """When the cooldown of the halt in force ends (ISO-8601), or None when not halted."""
        current = self.current
        return None if current is None else (current.since + self._cooldown).isoformat()

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
            "blocked": self._blocked,
            "by": current.by,
            "persisted": self._persisted,
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
        """Halt and return the halt in force; durable before returning unless the disk fails.

        While halted, the first reason and trigger stay; listeners hear halt_repeated, and a
        kill switch marks the halt in force as a kill. Never raises for a failed write: the
        gateway is halted in memory regardless, and `persisted` says whether the file agrees.
        """
        self._ensure_restored()
        requested = requested_halt(
            reason,
            trigger,
            by=by,
            since=self._now(),
            kill_switch=kill_switch,
            measure=measure,
            threshold=threshold,
        )
        current = self._state.current
        if current is None:
            kind: HaltEventKind = "halt"
            record = requested
            self._blocked = 0
            detail = requested.reason
        else:
            kind = "halt_repeated"
            record = replace(current, kill_switch=True) if requested.kill_switch else current
            detail = f"{requested.trigger.value}: {requested.reason}"
        changed = record != current
        if changed:
            # Memory first: a failing disk must not leave the gateway trading.
            self._state = replace(self._state, current=record)
            self._persist(f"{kind} ({requested.trigger.value})")
        what = "HALTED" if kind == "halt" else "halt repeated"
        # A repeat that changes nothing is worth a line, not an alert: anyone may send one.
        level = logging.CRITICAL if changed else logging.WARNING
        logger.log(
            level,
            "%s (%s) by %s: %s",
            what,
            requested.trigger.value,
            requested.by,
            requested.reason,
        )
        self._emit(
            HaltEvent(
                kind, requested.since, requested.by, record, self.summary(), detail, requested
            )
        )
        return record

    def record_blocked(self, detail: str) -> None:
        """Count one signal blocked by the halt: memory only, no I/O, no event.

        It runs once per blocked signal on the hot path; the journal already holds each
        blocked decision, and the resume's event carries the count. Callers block only after
        `is_halted` said so.
        """
        self._ensure_restored()
        self._blocked += 1

    def write_state(self) -> bool:
        """Write the in-memory state now, whatever is on disk (a state dir's first start writes
        its halt state, so that from then on the halt state and the journal vouch for each
        other); True once it is on disk."""
        self._ensure_restored()
        return self._persist("write")

    def retry_persist(self) -> bool:
        """Write the in-memory state again after a failed write; True once it is on disk.

        Does nothing (and returns True) when the state is already persisted, so a periodic
        caller costs no I/O in the normal case.
        """
        self._ensure_restored()
        if self._persisted:
            return True
        if self._persist("retry"):
            logger.warning("halt state written to %s after an earlier failure", self._store.path)
            return True
        return False

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
        `expected_auth_code`; then both checks are overridden and the event says which.
        HaltStateWriteError when the resume cannot be written: the gateway stays halted.
        """
        by = required_text(by, "by")
        if force:
            check_auth_code(auth_code, expected_auth_code, by)
        record = self.current
        if record is None:
            logger.info("resume by %s ignored: not halted", by)
            return
        now = self._now()
        kind, overrode = judge_resume(
            record, now=now, cooldown=self._cooldown, force=force, trigger_active=trigger_active
        )
        state = HaltState(current=None, last_resume_at=now)
        # Disk first: if the resume cannot be made durable the gateway stays halted.
        try:
            self._store.save(state)
        except (OSError, ValueError) as exc:
            # The file may hold either state now: mark it so retry_persist rewrites the halt.
            self._persisted = False
            logger.critical("resume by %s not written to %s: %s", by, self._store.path, exc)
            raise HaltStateWriteError(f"resume not written to {self._store.path}: {exc}") from exc
        blocked = self._blocked  # the next halt counts from zero again
        self._state = state
        self._persisted = True
        detail = f"blocked {blocked} signal{'' if blocked == 1 else 's'} while halted"
        if kind == "forced_resume":
            detail = f"{overrode}; {detail}"
            logger.warning("FORCED resume by %s of %r: %s", by, record.reason, detail)
        else:
            logger.warning("resumed by %s after %r: %s", by, record.reason, detail)
        self._emit(HaltEvent(kind, now, by, record, None, detail, blocked=blocked))

    # -- internals -------------------------------------------------------------------------

    def _persist(self, what: str) -> bool:
        """Write the in-memory state; on failure keep why, log CRITICAL, and return False."""
        try:
            self._store.save(self._state)
        except (OSError, ValueError) as exc:
            self._persisted = False
            logger.critical(
                "halt state NOT written to %s (%s): %s; halted in memory, retry pending",
                self._store.path,
                what,
                exc,
            )
            return False
        self._persisted = True
        return True

    def _ensure_restored(self) -> None:
        if not self._restored:
            self.restore()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"clock must return an aware datetime, got {now!r}")
        return now.astimezone(UTC)

    def _emit(self, event: HaltEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A broken journal or alert hook must never undo or stop a halt.
                logger.exception("halt listener %r failed on %s", listener, event.kind)
