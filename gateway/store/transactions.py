"""The journal's transactions: group commit, and what happens when a write fails.

Writes are of two kinds:

- *hard* writes (a signal's intent, a refusal, a decision) must be durable before the gateway
  acts on them or answers; each returns a ticket, the id of the group transaction it joined, and
  ``commit(ticket)`` says whether that group reached the disk (or raises JournalUnavailable);
- *soft* writes (events, key/values, order updates and fills) never raise: a soft write that
  cannot be written now is kept, in order, and written as soon as a write succeeds again.

A failed write (disk full, I/O error, a damaged page) leaves SQLite and this object consistent
whatever SQLite did with the transaction: SQLite rolls a transaction back by itself on some
errors (SQLITE_FULL, SQLITE_IOERR) and keeps it on others, so the connection's own
``in_transaction`` decides, never an assumption. A lost group fails every hard write in it and
re-queues its soft writes. The failure is reported once (``on_failure``) and stays reported,
even if some small write gets through meanwhile, until a deliberate probe writes and the
backlog is empty (``recovered``, then ``on_recovered``): "writable" is proven, not guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.store.db import Driver
from gateway.store.schema import JournalUnavailable

log = logging.getLogger("gateway.store.journal")

# How a write was started (see begin): it opened the group, it joined the open group as a single
# statement (SQLite undoes a failed statement by itself), or it joined under a savepoint.
OPENED, JOINED, SAVEPOINT = 0, 1, 2

# Soft writes kept while the disk refuses them; beyond this the oldest are dropped.
BACKLOG_LIMIT = 100_000

# A soft write, done again: True when it is written (in the open group), False when it is not.
SoftWrite = Callable[[], bool]


class Tainted(Exception):
    """Raised (from the error) by a write that joined the open group without a savepoint and
    could not undo by hand what it had written: only losing the whole group undoes it."""


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """Why the journal cannot write, and since when."""

    error: str
    since: datetime


class Transactions:
    def __init__(
        self,
        db: Driver,
        *,
        on_write: Callable[[float], None] | None = None,
        on_failure: Callable[[WriteFailure], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ):
        self.db = db
        self.on_write = on_write
        self.on_failure = on_failure
        self.on_recovered = on_recovered
        self.failure: WriteFailure | None = None
        self._open = False
        self._opened_at = 0.0
        self._group = 0  # the id (ticket) of the open or last group
        self._lost: set[int] = set()  # groups that never reached the disk
        self._waiters: list[asyncio.Future[None]] = []
        self._soft: list[SoftWrite] = []  # soft writes in the open group
        self._backlog: deque[SoftWrite] = deque()
        self._flushing = False
        # Called when what a write remembered (the journal's caches) can no longer be trusted.
        self.forget: Callable[[], None] = lambda: None
        self._dropping = False  # the backlog is full and drops its oldest soft writes
        # Told after every commit (the event stream's readers wake up: new rows are visible).
        self.on_commit: Callable[[], None] | None = None

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    @property
    def flushing(self) -> bool:
        return self._flushing

    # --- one write -------------------------------------------------------------------------

    def begin(self, statements: int) -> int:
        """Start one write of ``statements`` statements; returns how to end or undo it."""
        if not self._open:
            try:
                self.db.execute(self.db.begin_sql)
            except self.db.errors as exc:
                raise self._failed(exc) from exc
            self._open = True
            self._group += 1
            self._opened_at = time.perf_counter()
            return OPENED
        if statements <= 1:
            return JOINED
        try:
            self.db.execute("SAVEPOINT w")
        except self.db.errors as exc:
            raise self._failed(exc) from exc
        return SAVEPOINT

    def undo(self, how: int, exc: BaseException) -> BaseException:
        """Undo the write that failed with ``exc``; returns what the caller raises. The group's
        other writes stay unless SQLite dropped the whole transaction."""
        self.forget()
        if self._open and not self.db.in_transaction:
            # The backend dropped the whole group: SQLite on a full disk or an I/O error,
            # PostgreSQL on any failed statement (a statement's own error is not an outage).
            lost = self._lose_group(exc, report=self.db.is_outage(exc))
            return lost if self.db.is_outage(exc) else exc
        if how == OPENED:
            self._rollback()
            self._lose_group(exc, report=self.db.is_outage(exc))
        elif how == SAVEPOINT:
            try:
                self.db.execute("ROLLBACK TO w")
                self.db.execute("RELEASE w")
            except self.db.errors as inner:
                self._rollback()
                return self._lose_group(inner)
        if self.db.is_outage(exc):
            return self._failed(exc)
        return exc

    def abandon(self, exc: BaseException) -> JournalUnavailable:
        """Roll the open group back and lose it: a write in it could not be undone on its own
        (every hard write in the group fails; its soft writes are kept)."""
        self.forget()
        self._rollback()
        return self._lose_group(exc)

    def end(self, how: int, defer: bool) -> int:
        """Finish one write; committed before return unless ``defer``. Returns its ticket."""
        if how == SAVEPOINT:
            try:
                self.db.execute("RELEASE w")
            except self.db.errors as exc:
                raise self.undo(SAVEPOINT, exc) from exc
        ticket = self._group
        if not defer:
            self.commit_now()
        return ticket

    def soft(self, replay: SoftWrite) -> None:
        """Register a soft write just made in the open group (replayed if the group is lost)."""
        if self._open:
            self._soft.append(replay)

    def keep(self, replay: SoftWrite) -> None:
        """A soft write that could not be made now: written, in order, once the journal writes
        again (while anything waits, later soft writes queue behind it: a key's last value
        must stay last)."""
        if len(self._backlog) >= BACKLOG_LIMIT:
            if not self._dropping:  # one line per outage, not one per dropped write
                log.error(
                    "journal backlog full (%d soft writes kept): the oldest are dropped until "
                    "the journal writes again",
                    BACKLOG_LIMIT,
                )
                self._dropping = True
            self._backlog.popleft()
        self._backlog.append(replay)

    # --- commits ---------------------------------------------------------------------------

    def commit_now(self, ticket: int | None = None) -> None:
        """Commit the open group now; raise JournalUnavailable if ``ticket``'s group (or the
        open one) did not reach the disk."""
        if self._open:
            try:
                self.db.execute("COMMIT")
            except self.db.errors as exc:
                self.forget()
                self._rollback()
                raise self._lose_group(exc) from exc
            self._open = False
            self._soft.clear()
            if self.on_write is not None:
                self.on_write(time.perf_counter() - self._opened_at)
            if self.on_commit is not None:
                self.on_commit()
            self._succeeded()
        self._resolve_waiters(None)
        self._check(ticket)

    async def commit(self, ticket: int) -> None:
        """Wait until ``ticket``'s group is committed (one commit for every waiter of a loop
        tick); raises JournalUnavailable if it was lost."""
        if self._open and ticket == self._group:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            if not self._waiters:
                loop.call_soon(self._commit_soon)
            self._waiters.append(waiter)
            await waiter
        self._check(ticket)

    def schedule_commit(self) -> None:
        """Commit the open group soon, without waiting for it (broker events)."""
        if self._open and not self._waiters:
            loop = asyncio.get_running_loop()
            self._waiters.append(loop.create_future())
            loop.call_soon(self._commit_soon)

    def _commit_soon(self) -> None:
        # Called by the loop: a failure reaches the waiters, never the loop's error handler.
        with contextlib.suppress(JournalUnavailable):
            self.commit_now()

    def _check(self, ticket: int | None) -> None:
        if ticket is not None and ticket in self._lost:
            raise JournalUnavailable(
                f"journal write failed: {self.failure.error if self.failure else 'lost'}"
            )

    # --- failure and recovery --------------------------------------------------------------

    def _rollback(self) -> None:
        if self.db.in_transaction:
            with contextlib.suppress(*self.db.errors):
                self.db.execute("ROLLBACK")

    def _lose_group(self, exc: BaseException, *, report: bool = True) -> JournalUnavailable:
        """The open group did not reach the disk: fail its hard writes, keep its soft ones."""
        self._open = False
        self._lost.add(self._group)
        if len(self._lost) > 10_000:
            self._lost = {g for g in self._lost if g > self._group - 1000}
        # The group's soft writes are older than anything waiting: they go first, in order.
        self._backlog.extendleft(reversed(self._soft))
        self._soft.clear()
        error = self._failed(exc) if report else JournalUnavailable(str(exc))
        self._resolve_waiters(error)
        return error

    def _failed(self, exc: BaseException) -> JournalUnavailable:
        message = f"{type(exc).__name__}: {exc}"
        if self.failure is None:
            self.failure = WriteFailure(message, datetime.now(UTC))
            log.critical("journal cannot write: %s", message)
            if self.on_failure is not None:
                self.on_failure(self.failure)
        return JournalUnavailable(f"journal write failed: {message}")

    def recovered(self) -> None:
        """A probe wrote and nothing waits any more: the journal is writable again."""
        if self.failure is not None and not self._backlog:
            log.warning("journal writes again (after: %s)", self.failure.error)
            self.failure = None
            self._dropping = False
            if self.on_recovered is not None:
                self.on_recovered()

    def _succeeded(self) -> None:
        if self._backlog and not self._flushing:
            with contextlib.suppress(RuntimeError):  # no loop: the next write flushes
                asyncio.get_running_loop().call_soon(self.flush_backlog)

    def flush_backlog(self) -> None:
        """Write what was kept while the journal could not write, oldest first; stop at the
        first that still cannot be written (it stays first)."""
        if self._flushing or not self._backlog:
            return
        self._flushing = True
        try:
            while self._backlog:
                if not self._backlog[0]():
                    break
                self._backlog.popleft()
            with contextlib.suppress(JournalUnavailable):
                self.commit_now()  # a lost group puts its soft writes back in front
        finally:
            self._flushing = False

    def _resolve_waiters(self, error: JournalUnavailable | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
                waiter.exception()  # mark retrieved: a scheduled commit has no reader
