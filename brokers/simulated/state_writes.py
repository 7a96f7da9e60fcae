"""Writing the simulated broker's state file: group commit, the WAL checkpointer, and the
broker's side of both (what one call changed, committed before it answers).

Concurrent broker calls share one write transaction, committed once on the loop's next turn,
and each call still returns only after the commit that holds its changes (an acknowledged
order survives kill -9).

A call that cannot wait (no running loop, or a synchronous caller) commits the open group at
once, with whatever other calls staged in it. A failed statement or commit rolls the whole
group back and fails every call waiting on it: none of them is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from brokers.base import SHARED_COMMIT

if TYPE_CHECKING:
    from brokers.simulated.executions import MemoryExecutions
    from brokers.simulated.ledger import Ledger
    from brokers.simulated.state import StateFile

log = logging.getLogger("brokers.simulated.state")

Statements = Callable[[sqlite3.Connection], None]
T = TypeVar("T")


class GroupCommit:
    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        failed: Callable[[sqlite3.Error], Exception],
    ):
        self._connection = connection
        self._failed = failed  # the error a caller sees for a statement or commit that failed
        self._open = False
        self._scheduled = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def open(self) -> bool:
        return self._open

    def commit_soon(self) -> None:
        """Commit the group on the loop's next turn. Called before a change is made, so the
        commit runs before anything the change wakes up (an event's reader) sees it."""
        if not self._scheduled:
            asyncio.get_running_loop().call_soon(self._commit_soon)
            self._scheduled = True

    def stage(self, statements: Statements) -> asyncio.Future[None]:
        """Run ``statements`` in the open group; the future is done once the group is
        committed (its error: the group was lost)."""
        self._write(statements)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.commit_soon()
        return waiter

    def write(self, statements: Statements) -> None:
        """Run ``statements`` and commit now (with the rest of the open group)."""
        self._write(statements)
        self.commit_now()

    def commit_now(self) -> None:
        if self._open:
            self._open = False
            try:
                self._connection().execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._lose(exc) from exc
        self._resolve(None)

    def _write(self, statements: Statements) -> None:
        db = self._connection()
        try:
            if not self._open:
                db.execute("BEGIN IMMEDIATE")
                self._open = True
            statements(db)
        except sqlite3.Error as exc:
            raise self._lose(exc) from exc
        except BaseException as exc:
            self._lose(exc)
            raise

    def _lose(self, exc: BaseException) -> Exception:
        """Roll the group back; every call waiting on it fails."""
        self._open = False
        db = self._connection()
        # SQLite may have rolled back already (a full disk, an I/O error).
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        error = self._failed(exc) if isinstance(exc, sqlite3.Error) else RuntimeError(str(exc))
        self._resolve(error)
        return error

    def _commit_soon(self) -> None:
        self._scheduled = False
        # A failure reaches the waiters, never the loop's error handler.
        with contextlib.suppress(Exception):
            self.commit_now()

    def _resolve(self, error: Exception | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class Checkpointer:
    """Copies the WAL into the database file every ``interval_s`` from its own connection and
    thread, in PASSIVE mode (never blocking the writer), so the WAL stays small."""

    def __init__(self, path: Path, *, interval_s: float = 1.0):
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-state-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.warning("simulated broker state checkpoint failed: %s", exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class CallWrites:
    """What one broker call changed in the ledger, written to the state file (when there is
    one) before the call answers."""

    def __init__(
        self, state: StateFile | None, ledger: Callable[[], Ledger], memory: MemoryExecutions
    ):
        self._state = state
        self._ledger = ledger
        self._memory = memory  # the executions, when there is no state file to hold them

    @contextlib.contextmanager
    def changing(self, grouped: list[asyncio.Future[None]] | None = None) -> Iterator[None]:
        """Whatever the block changes is committed (one transaction) when it ends. With
        ``grouped`` it joins the open group instead, and the commit to await before answering
        is put there (see ``committed``)."""
        state = self._state
        if grouped is not None and state is not None:
            state.commit_soon()  # scheduled before the block publishes any event
        try:
            yield
        finally:
            ledger = self._ledger()
            if state is not None:
                changes = ledger.pending()
                if changes:
                    if grouped is None:
                        state.write(changes)
                    else:
                        grouped.append(state.stage(changes))
            else:
                self._memory.add(ledger.new_fills)
            ledger.settle()

    async def committed(self, call: Callable[[list[asyncio.Future[None]] | None], T]) -> T:
        """``call``'s answer, once what it changed is committed: with the other calls of this
        loop turn (one commit for all of them) when the caller allows it (``SHARED_COMMIT``),
        at once otherwise."""
        if not SHARED_COMMIT.get():
            return call(None)
        grouped: list[asyncio.Future[None]] = []
        try:
            return call(grouped)
        finally:
            for commit in grouped:
                await commit
