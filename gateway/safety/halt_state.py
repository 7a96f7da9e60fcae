"""The halt state a gateway keeps across restarts, and the durable JSON file that holds it.

The file holds only what must survive a restart: the halt in force and the last resume. The
history of halts and resumes lives in the journal (the halt manager's listeners write it), and
the count of blocked signals lives in memory: neither costs a file write per event.

`HaltStateStore.save` is atomic and durable (temp file, fsync, rename, fsync of the directory):
after it returns, the state survives kill -9 and power loss, and a reader never sees half a file.
The file is padded to a fixed size, so that on a full disk the state is still written, over the
old one in place (which needs no new block): a halt answered on a full disk survives a crash.
`HaltStateStore.load` refuses anything it cannot fully trust with `HaltStateUnreadable`; the
halt manager turns that into a halt, never into a default. Schema 2; a schema-1 file (which also
carried the history and the blocked count) still loads, without those two.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, cast

__all__ = [
    "SCHEMA_VERSION",
    "HaltRecord",
    "HaltState",
    "HaltStateStore",
    "HaltStateUnreadable",
    "HaltTrigger",
    "requested_halt",
    "required_text",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
#: Versions `load` reads: 1 carried the history and blocked count, which are dropped on load.
READABLE_VERSIONS: Final = frozenset({1, SCHEMA_VERSION})
#: The file's size: room for any state (a reason is at most 500 characters), whitespace after it.
PADDED_SIZE: Final = 8192


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
    PROTECTION_LOST = "protection_lost"
    FIRM_HALT = "firm_halt"  # the firm halted (or killed) every gateway (gateway.firm)
    FIRM_UNREACHABLE = "firm_unreachable"  # the firm's PostgreSQL was out of reach for grace_s


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


def requested_halt(
    reason: str,
    trigger: HaltTrigger | str,
    *,
    by: str,
    since: datetime,
    kill_switch: bool,
    measure: float | None,
    threshold: float | None,
) -> HaltRecord:
    """The halt a caller asks for, validated: ValueError names the field and the reason.

    Trigger kill_switch always implies kill_switch=True.
    """
    reason = required_text(reason, "reason")
    by = required_text(by, "by")
    try:
        trigger = HaltTrigger(trigger)
    except ValueError:
        choices = ", ".join(t.value for t in HaltTrigger)
        raise ValueError(f"trigger must be one of {choices}, got {trigger!r}") from None
    for name, value in (("measure", measure), ("threshold", threshold)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    kill_switch = kill_switch or trigger is HaltTrigger.KILL_SWITCH
    return HaltRecord(reason, trigger, since, kill_switch, by, measure, threshold)


def required_text(value: object, name: str) -> str:
    """`value` stripped; ValueError naming `name` unless it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class HaltState:
    """Everything persisted: the halt in force (None when trading) and the last resume."""

    current: HaltRecord | None = None
    last_resume_at: datetime | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON document written to disk."""
        return {
            "schema_version": SCHEMA_VERSION,
            "current": None if self.current is None else _record_to_dict(self.current),
            "last_resume_at": _iso(self.last_resume_at),
        }

    @classmethod
    def from_json_dict(cls, data: object) -> HaltState:
        """Parse a schema 1 or 2 document; raise HaltStateUnreadable otherwise.

        A schema-1 document's `history` and `blocked` are ignored: the journal holds the
        history now, and the blocked count starts again from zero at each start.
        """
        doc = _as_mapping(data, "document")
        version = doc.get("schema_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            readable = ", ".join(str(v) for v in sorted(READABLE_VERSIONS))
            raise HaltStateUnreadable(
                f"unknown schema_version {version!r} (this gateway reads {readable})"
            )
        current_raw = _field(doc, "current", "document")
        return cls(
            current=None if current_raw is None else _record_from_dict(current_raw),
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
        """Write `state` atomically; it is on stable storage when this returns. On a full disk,
        written over the old state in place (see the module's docstring)."""
        directory = self._path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_json_dict(), indent=2, sort_keys=True, allow_nan=False)
        body = data.encode("utf-8")
        body += b" " * (PADDED_SIZE - 1 - len(body)) + b"\n"  # nothing when it is longer
        try:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self._path.name}.", suffix=".tmp", dir=directory
            )
        except OSError as exc:
            if not self._written_in_place(exc, body):
                raise
            return
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(body)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self._path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            if not (isinstance(exc, OSError) and self._written_in_place(exc, body)):
                raise
            return
        # The rename itself is only durable once the directory entry is on disk.
        _fsync_directory(directory)

    def _written_in_place(self, exc: OSError, body: bytes) -> bool:
        """The disk is full: write over the old (padded) file, which needs no new block. Not
        atomic, but a torn file is unreadable, and an unreadable state starts HALTED."""
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return False
        try:
            fd = os.open(self._path, os.O_WRONLY)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size < len(body):
                return False
            if os.pwrite(fd, body, 0) != len(body):
                return False
            os.fsync(fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        logger.warning("disk full: halt state written over %s in place", self._path)
        return True

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
