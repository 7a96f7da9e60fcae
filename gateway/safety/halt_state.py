"""The halt state a gateway keeps across restarts, and the durable JSON file that holds it.

`HaltStateStore.save` is atomic and durable (temp file, fsync, rename, fsync of the directory):
after it returns, the state survives kill -9 and power loss, and a reader never sees half a file.
`HaltStateStore.load` refuses anything it cannot fully trust with `HaltStateUnreadable`; the
halt manager turns that into a halt, never into a default.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

__all__ = [
    "SCHEMA_VERSION",
    "HaltHistoryEntry",
    "HaltRecord",
    "HaltState",
    "HaltStateStore",
    "HaltStateUnreadable",
    "HaltTrigger",
    "HistoryKind",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1


class HaltTrigger(StrEnum):
    """What made the gateway halt (the `halt.trigger` of the status)."""

    MANUAL = "manual"
    KILL_SWITCH = "kill_switch"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    PORTFOLIO_HEAT = "portfolio_heat"
    TECHNICAL_FAILURE = "technical_failure"
    RECONCILIATION = "reconciliation"
    JOB_FAILURE = "job_failure"
    STATE_UNREADABLE = "state_unreadable"
    JOURNAL_FAILURE = "journal_failure"


class HaltStateUnreadable(Exception):
    """The persisted halt state is missing a piece, corrupt, or of an unknown schema version."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HaltRecord:
    """The halt in force: its first reason and trigger, and whether the kill switch fired."""

    reason: str
    trigger: HaltTrigger
    since: datetime
    kill_switch: bool
    by: str
    measure: float | None = None
    threshold: float | None = None


_TRIGGER_VALUES: Final = frozenset(t.value for t in HaltTrigger)

HistoryKind = Literal["halt", "halt_repeated", "resume", "forced_resume"]
_HISTORY_KINDS: Final = frozenset(get_args(HistoryKind))


@dataclass(frozen=True)
class HaltHistoryEntry:
    """One line of the halt history.

    For halts, `reason`/`trigger`/`measure`/`threshold` are what that call asked for (a repeated
    halt keeps its own reason here even though the halt in force keeps the first one). For
    resumes they describe the halt that ended, `blocked` counts the orders it blocked, and
    `detail` says which checks a forced resume overrode.
    """

    kind: HistoryKind
    at: datetime
    by: str
    reason: str
    trigger: HaltTrigger
    kill_switch: bool
    measure: float | None = None
    threshold: float | None = None
    blocked: int = 0
    detail: str = ""


@dataclass(frozen=True)
class HaltState:
    """Everything persisted: the halt in force, blocked orders since it began, the history."""

    current: HaltRecord | None = None
    blocked: int = 0
    history: tuple[HaltHistoryEntry, ...] = ()
    last_resume_at: datetime | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON document written to disk."""
        return {
            "schema_version": SCHEMA_VERSION,
            "current": None if self.current is None else _record_to_dict(self.current),
            "blocked": self.blocked,
            "last_resume_at": _iso(self.last_resume_at),
            "history": [_entry_to_dict(e) for e in self.history],
        }

    @classmethod
    def from_json_dict(cls, data: object) -> HaltState:
        """Parse a document written by `to_json_dict`; raise HaltStateUnreadable otherwise."""
        doc = _as_mapping(data, "document")
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise HaltStateUnreadable(
                f"unknown schema_version {version!r} (this gateway reads {SCHEMA_VERSION})"
            )
        current_raw = _field(doc, "current", "document")
        history_raw = _field(doc, "history", "document")
        if not isinstance(history_raw, list):
            raise HaltStateUnreadable("field 'history' is not a list")
        return cls(
            current=None if current_raw is None else _record_from_dict(current_raw),
            blocked=_count(doc, "blocked", "document"),
            history=tuple(_entry_from_dict(raw, i) for i, raw in enumerate(history_raw)),
            last_resume_at=_opt_datetime(doc, "last_resume_at", "document"),
        )


class HaltStateStore:
    """The halt state file (state_dir/halt_state.json)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        return self._path

    def save(self, state: HaltState) -> None:
        """Write `state` atomically; it is on stable storage when this returns."""
        directory = self._path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_json_dict(), indent=2, sort_keys=True, allow_nan=False)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self._path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data.encode("utf-8"))
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        # The rename itself is only durable once the directory entry is on disk.
        _fsync_directory(directory)

    def load(self) -> HaltState | None:
        """The saved state, or None when no state was ever saved.

        Raises HaltStateUnreadable when the file exists but cannot be trusted.
        """
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HaltStateUnreadable(f"cannot read {self._path}: {exc}") from exc
        if not raw.strip():
            raise HaltStateUnreadable(f"{self._path} is empty")
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise HaltStateUnreadable(f"{self._path} is not valid JSON: {exc}") from exc
        try:
            return HaltState.from_json_dict(data)
        except HaltStateUnreadable as exc:
            raise HaltStateUnreadable(f"{self._path}: {exc.reason}") from exc

    def quarantine(self, at: datetime) -> Path | None:
        """Move an unreadable file aside (kept as evidence) before a fresh state replaces it."""
        target = self._path.with_name(f"{self._path.name}.unreadable-{at:%Y%m%dT%H%M%S%fZ}")
        try:
            os.replace(self._path, target)
        except FileNotFoundError:
            return None
        except OSError:
            logger.exception("could not move the unreadable halt state %s aside", self._path)
            return None
        return target


def _fsync_directory(directory: Path) -> None:
    if os.name == "nt":  # Windows cannot open a directory for fsync; NTFS journals renames.
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _record_to_dict(record: HaltRecord) -> dict[str, Any]:
    return {
        "reason": record.reason,
        "trigger": record.trigger.value,
        "since": record.since.isoformat(),
        "kill_switch": record.kill_switch,
        "by": record.by,
        "measure": record.measure,
        "threshold": record.threshold,
    }


def _entry_to_dict(entry: HaltHistoryEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "at": entry.at.isoformat(),
        "by": entry.by,
        "reason": entry.reason,
        "trigger": entry.trigger.value,
        "kill_switch": entry.kill_switch,
        "measure": entry.measure,
        "threshold": entry.threshold,
        "blocked": entry.blocked,
        "detail": entry.detail,
    }


def _record_from_dict(raw: object) -> HaltRecord:
    where = "current"
    doc = _as_mapping(raw, where)
    return HaltRecord(
        reason=_text(doc, "reason", where),
        trigger=_trigger(doc, where),
        since=_datetime(doc, "since", where),
        kill_switch=_bool(doc, "kill_switch", where),
        by=_text(doc, "by", where),
        measure=_opt_number(doc, "measure", where),
        threshold=_opt_number(doc, "threshold", where),
    )


def _entry_from_dict(raw: object, index: int) -> HaltHistoryEntry:
    where = f"history[{index}]"
    doc = _as_mapping(raw, where)
    kind = _field(doc, "kind", where)
    if kind not in _HISTORY_KINDS:
        raise HaltStateUnreadable(f"{where}.kind {kind!r} is unknown")
    detail = _field(doc, "detail", where)
    if not isinstance(detail, str):
        raise HaltStateUnreadable(f"{where}.detail is not a string")
    return HaltHistoryEntry(
        kind=cast(HistoryKind, kind),
        at=_datetime(doc, "at", where),
        by=_text(doc, "by", where),
        reason=_text(doc, "reason", where),
        trigger=_trigger(doc, where),
        kill_switch=_bool(doc, "kill_switch", where),
        measure=_opt_number(doc, "measure", where),
        threshold=_opt_number(doc, "threshold", where),
        blocked=_count(doc, "blocked", where),
        detail=detail,
    )


def _as_mapping(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise HaltStateUnreadable(f"{where} is not a JSON object")
    return cast(dict[str, Any], raw)


def _field(doc: dict[str, Any], key: str, where: str) -> object:
    if key not in doc:
        raise HaltStateUnreadable(f"{where} has no field {key!r}")
    return doc[key]


def _text(doc: dict[str, Any], key: str, where: str) -> str:
    value = _field(doc, key, where)
    if not isinstance(value, str) or not value:
        raise HaltStateUnreadable(f"{where}.{key} is not a non-empty string")
    return value


def _bool(doc: dict[str, Any], key: str, where: str) -> bool:
    value = _field(doc, key, where)
    if not isinstance(value, bool):
        raise HaltStateUnreadable(f"{where}.{key} is not a boolean")
    return value


def _count(doc: dict[str, Any], key: str, where: str) -> int:
    value = _field(doc, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HaltStateUnreadable(f"{where}.{key} is not a non-negative integer")
    return value


def _opt_number(doc: dict[str, Any], key: str, where: str) -> float | None:
    value = _field(doc, key, where)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HaltStateUnreadable(f"{where}.{key} is not a finite number")
    return float(value)


def _trigger(doc: dict[str, Any], where: str) -> HaltTrigger:
    value = _field(doc, "trigger", where)
    if isinstance(value, str) and value in _TRIGGER_VALUES:
        return HaltTrigger(value)
    raise HaltStateUnreadable(f"{where}.trigger {value!r} is unknown")


def _datetime(doc: dict[str, Any], key: str, where: str) -> datetime:
    value = _field(doc, key, where)
    if not isinstance(value, str):
        raise HaltStateUnreadable(f"{where}.{key} is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HaltStateUnreadable(f"{where}.{key} {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise HaltStateUnreadable(f"{where}.{key} {value!r} has no time zone")
    return parsed


def _opt_datetime(doc: dict[str, Any], key: str, where: str) -> datetime | None:
    if _field(doc, key, where) is None:
        return None
    return _datetime(doc, key, where)
