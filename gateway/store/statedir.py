"""The state dir: one gateway at a time, and its files vouching for each other.

- **One gateway per state dir.** ``StateDirLock`` takes an exclusive ``flock`` on
  ``state_dir/gateway.lock`` before anything else is touched. The kernel releases it when the
  holder dies, so a kill -9 never leaves a stale lock; a second gateway is refused with the pid
  of the holder.
- **Lost state is never a fresh start.** The journal and the halt state vouch for each other: a
  missing or empty journal beside other state of this gateway (its halt state, its tokens, the
  simulated account) refuses to start unless a fresh journal is asked for explicitly
  (``--new-journal``); a halt state that is gone while the journal records a halt with no resume
  starts HALTED (the service's part, see ``missing_halt_state``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.store.archived import ARCHIVE_DIR

JOURNAL_FILE = "journal.sqlite3"
HALT_FILE = "halt_state.json"
TOKENS_FILE = "tokens.json"
SIM_BROKER_FILE = "sim_broker.sqlite3"
LOCK_FILE = "gateway.lock"
SEAL_FILE = JOURNAL_FILE + ".seal"  # a clean stop's word for the journal (gateway.store.seal)


class StateDirError(Exception):
    """The state dir cannot be used as it is (one line for the operator; exit 2)."""


class StateDirInUse(StateDirError):
    pass


class StateDirLock:
    """An exclusive lock on the state dir, held until ``release`` (or the process's end)."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StateDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirInUse(
                f"state dir {self.path.parent} is in use by another gateway (pid {holder}); "
                "one gateway per state dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StateDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def journal(self) -> Path:
        return self.path / JOURNAL_FILE

    @property
    def halt_file(self) -> Path:
        return self.path / HALT_FILE

    def _has_journal(self) -> bool:
        return self.journal.exists() and self.journal.stat().st_size > 0

    def other_state(self) -> list[str]:
        """The files of this gateway's state other than the journal that exist."""
        names = (HALT_FILE, TOKENS_FILE, SIM_BROKER_FILE, SEAL_FILE)
        return [name for name in names if (self.path / name).exists()]

    def check_journal(self, *, new_journal: bool) -> None:
        """Refuse a missing or empty journal beside other state, unless ``new_journal``; with
        it, an existing journal is moved aside (kept), never deleted."""
        if new_journal:
            self._move_journal_aside()
            return
        others = self.other_state()
        if others and not self._has_journal():
            what = "missing" if not self.journal.exists() else "empty"
            raise StateDirError(
                f"journal {self.journal} is {what} but this state dir holds "
                f"{', '.join(others)}: refusing to start as if fresh (the journal's halts, "
                "idempotency records and equity marks would be lost); restore the journal, or "
                "start with --new-journal to begin a new one deliberately"
            )

    def _move_journal_aside(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        # The seal goes with its journal: a new journal must not find a seal that is not its own.
        for suffix in ("", "-wal", "-shm", ".seal"):
            source = self.path / f"{JOURNAL_FILE}{suffix}"
            if source.exists():
                source.rename(self.path / f"{JOURNAL_FILE}.replaced-{stamp}{suffix}")
        # Its archives too: they are listed by it alone, and the new journal's first
        # `gateway archive` would delete them as leftovers of an interrupted run.
        archives = self.path / ARCHIVE_DIR
        if archives.exists():
            archives.rename(self.path / f"{ARCHIVE_DIR}.replaced-{stamp}")
