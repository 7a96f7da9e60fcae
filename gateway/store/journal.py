"""The write-ahead journal: SQLite in WAL mode under ``state_dir`` (or, for an active/standby
pair, PostgreSQL in the session holding the account's lock: ``gateway.store.pg``).

Every signal with its decision, every order intent (written and committed *before* the broker is
called), every broker answer and event, every fill, and the gateway's own events (halts, state
transitions, reconciliation differences, failures). ``durability: process`` commits with
synchronous=NORMAL: a commit is in the WAL file when it returns, so it survives kill -9 of the
process (not a power cut). ``durability: power`` uses synchronous=FULL: every commit is fsynced.

Calls are synchronous on the event loop thread: each is a few microseconds on the hot path, and
doing them in order on one thread is what makes "intent before broker call" true by construction.
Hard and soft writes, group commit and what a failed write does: see ``transactions``. The schema
is versioned; a journal written by a newer version, or failing SQLite's integrity check, is
refused at open with a clear message and left untouched.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from brokers.base import Fill, utcnow
from gateway.store import stream
from gateway.store.amends import AmendWrites
from gateway.store.db import Driver, SqliteDriver
from gateway.store.orders import OrderRows, OrderUpdate
from gateway.store.reads import JournalReads
from gateway.store.schema import (
    ORDER_COLUMNS,
    SCHEMA_VERSION,
    Checkpointer,
    JournalError,
    JournalUnavailable,
    StoredOrder,
    StoredSignal,
    open_journal,
)
from gateway.store.signal_writes import SignalWrites
from gateway.store.transactions import SoftWrite, Tainted, Transactions, WriteFailure

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "JournalError",
    "JournalUnavailable",
    "StoredOrder",
    "StoredSignal",
    "WriteFailure",
]

log = logging.getLogger("gateway.store.journal")


class _Stamp:
    """``utcnow().isoformat()`` without a datetime per call: the text of the current second is
    built once, the microseconds are appended (the same text, at a fraction of the cost)."""

    __slots__ = ("clock", "prefix", "second")

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock  # nanoseconds since the epoch
        self.second = -1
        self.prefix = ""

    def __call__(self) -> str:
        second, micro = divmod(self.clock() // 1000, 1_000_000)
        if second != self.second:
            self.prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self.second = second
        # isoformat() leaves the fraction out when it is zero; so does this.
        return f"{self.prefix}.{micro:06d}+00:00" if micro else f"{self.prefix}+00:00"


_now = _Stamp()


class Journal(SignalWrites, AmendWrites, JournalReads):
    def __init__(
        self,
        path: Path,
        *,
        durability: Literal["process", "power"] = "process",
        on_write: Callable[[float], None] | None = None,
        on_failure: Callable[[WriteFailure], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        checkpoint_interval_s: float = 1.0,
        db: Driver | None = None,
    ):
        """The SQLite journal at ``path``; or, given ``db``, the journal that driver holds
        (an active/standby pair's, in PostgreSQL: see ``gateway.store.pg``)."""
        self.path = path
        self._checkpointer: Checkpointer | None = None
        if db is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = SqliteDriver(open_journal(path, durability), path)
            self._checkpointer = Checkpointer(path, interval_s=checkpoint_interval_s)
        self._db: Driver = db
        super().__init__(self._db)
        self._orders = OrderRows()
        self._tx = Transactions(
            self._db, on_write=on_write, on_failure=on_failure, on_recovered=on_recovered
        )
        self._tx.forget = self._orders.forget

    def _stamp(self) -> str:
        return _now()

    def on_commit(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every commit (it must be quick and never raise)."""
        self._tx.on_commit = listener

    # --- health ------------------------------------------------------------------------------

    @property
    def failure(self) -> WriteFailure | None:
        """Why the journal cannot write, or None while it can."""
        return self._tx.failure

    @property
    def backlog(self) -> int:
        """Soft writes (events, state, order updates) waiting for the journal to write again."""
        return self._tx.backlog

    def probe(self) -> bool:
        """Try one small write now; True when the journal writes and nothing waits to be
        written (only a probe declares a failed journal writable again)."""
        self.put("journal_probe", _now())  # kept in the backlog if it cannot be written
        self._tx.flush_backlog()  # commits what it writes: no group is left open
        if not self._tx.backlog:
            self._tx.recovered()
        return self._tx.failure is None

    # --- commits -----------------------------------------------------------------------------

    def commit_now(self, ticket: int | None = None) -> None:
        self._tx.commit_now(ticket)

    async def commit(self, ticket: int) -> None:
        """Wait until the group of ``ticket`` is committed (one commit for all waiters)."""
        await self._tx.commit(ticket)

    def schedule_commit(self) -> None:
        self._tx.schedule_commit()

    def close(self) -> None:
        try:
            self._tx.commit_now()
        except JournalUnavailable as exc:
            log.error("journal closed with writes lost: %s", exc)
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._db.closing_sql is not None:
            try:
                self._db.execute(self._db.closing_sql)
            except self._db.errors as exc:
                log.warning("final journal checkpoint failed: %s", exc)
        self._db.close()

    # --- soft writes: never raise; kept and written once the journal writes again ------------

    def _soft(
        self, write: Callable[[], None], replay: SoftWrite, *, statements: int, defer: bool
    ) -> bool:
        """Make one soft write; True when it is written. One that cannot be written now is
        kept (unless it is being replayed from the backlog, which keeps it in place)."""
        tx = self._tx
        if tx.backlog and not tx.flushing:
            tx.keep(replay)  # behind what waits already, so the order holds
            tx.flush_backlog()
            return False
        try:
            how = tx.begin(statements)
            try:
                write()
            except Tainted as exc:
                # What the write made could not be undone on its own: the group goes.
                raise tx.abandon(exc.__cause__ or exc) from None
            except BaseException as exc:
                error = tx.undo(how, exc)
                if not isinstance(error, JournalUnavailable):
                    raise error from exc
                raise error from None
            tx.end(how, defer)
        except JournalUnavailable:
            if not tx.flushing:
                tx.keep(replay)
            return False
        tx.soft(replay)
        return True

    def record_order_updates(self, updates: list[OrderUpdate], defer: bool = False) -> bool:
        """Broker events, many in one transaction (they arrive in bursts)."""
        now = _now()
        rows, db = self._orders, self._db

        def write() -> None:
            for update in updates:  # in order: each is compared with the one before
                rows.write_update(db, update, now)

        return self._soft(
            write,
            lambda: self.record_order_updates(updates, defer=True),
            statements=rows.statements(updates),
            defer=defer,
        )

    def record_fills(self, fills: list[Fill]) -> bool:
        """Fills the broker told again (``pipeline.fill_recovery``), each written like a live
        fill (its row and its stream event), without a second order state; one already
        journaled under its fill_id adds nothing."""
        now = _now()
        rows, db = self._orders, self._db

        def write() -> None:
            for fill in fills:
                rows.write_fill(db, fill, now)

        return self._soft(
            # One fill undoes its own row (see OrderRows.statements); more need a savepoint.
            write,
            lambda: self.record_fills(fills),
            statements=min(len(fills), 2),
            defer=False,
        )

    def record_order_status(self, client_order_id: str, status: str, detail: str) -> bool:
        """An order state the broker did not report (rejected after failed sends, a submit
        that never left because the gateway halted first, an intent found absent)."""
        self._orders.forget(client_order_id)
        now = _now()

        def write() -> None:
            row = self._db.execute(
                f"UPDATE orders SET status=?, updated_at=? WHERE client_order_id=? "
                f"RETURNING {ORDER_COLUMNS}",
                (status, now, client_order_id),
            ).fetchone()
            if row is not None:
                stream.append_order(self._db, StoredOrder(*row), now)
            self._db.execute(
                "INSERT INTO order_events (client_order_id, status, detail, at) VALUES (?,?,?,?)",
                (client_order_id, status, detail, now),
            )

        return self._soft(
            write,
            lambda: self.record_order_status(client_order_id, status, detail),
            statements=3,
            defer=False,
        )

    def record_state(self, payload: dict[str, Any]) -> bool:
        """A change of risk state, halt or resume, as the event stream gives it."""
        now = _now()
        text = json.dumps(payload, default=str)
        return self._soft(
            lambda: stream.append(self._db, stream.STATE, None, text, now),
            lambda: self.record_state(payload),
            statements=1,
            defer=False,
        )

    def mark_external(self, client_order_id: str) -> bool:
        return self._soft(
            lambda: self._db.execute(
                "UPDATE orders SET external=1 WHERE client_order_id=?", (client_order_id,)
            ).close(),
            lambda: self.mark_external(client_order_id),
            statements=1,
            defer=False,
        )

    def record_event(self, kind: str, payload: dict[str, Any], at: datetime | None = None) -> bool:
        stamp = (at or utcnow()).isoformat()
        text = json.dumps(payload, default=str)
        return self._soft(
            lambda: self._db.execute(
                "INSERT INTO events (kind, payload, at) VALUES (?,?,?)", (kind, text, stamp)
            ).close(),
            lambda: self.record_event(kind, payload, datetime.fromisoformat(stamp)),
            statements=1,
            defer=False,
        )

    def put(self, key: str, value: Any) -> bool:
        text = json.dumps(value, default=str)
        return self._soft(
            lambda: self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, text),
            ).close(),
            lambda: self.put(key, value),
            statements=1,
            defer=False,
        )
