"""The write-ahead journal: SQLite in WAL mode under ``state_dir``.

Every signal with its decision, every order intent (written and committed *before* the broker is
called), every broker answer and event, every fill, and the gateway's own events (halts, state
transitions, reconciliation differences, failures). ``durability: process`` commits with
synchronous=NORMAL: a commit is in the WAL file when it returns, so it survives kill -9 of the
process (not a power cut). ``durability: power`` uses synchronous=FULL: every commit is fsynced,
which survives power loss and costs one fsync per commit.

Calls are synchronous on the event loop thread: each is a few microseconds on the hot path, and
doing them in order on one thread is what makes "intent before broker call" true by construction.
The schema is versioned; migrations run at open, and a journal written by a newer version is
refused with a clear message, never rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from brokers.base import BrokerOrder, Fill, OrderRequest, utcnow
from gateway.store.schema import (
    MIGRATIONS,
    OPEN_STATUSES,
    SCHEMA_VERSION,
    Checkpointer,
    JournalError,
    StoredOrder,
    StoredSignal,
)

__all__ = ["SCHEMA_VERSION", "Journal", "JournalError", "StoredOrder", "StoredSignal"]

log = logging.getLogger("gateway.store.journal")

# An order's journaled state: broker_order_id, status, filled_quantity, avg_fill_price.
_OrderState = tuple[str, str, str, str | None]

# How a write was started (Journal._begin): it opened the transaction, it joined the open one
# as a single statement, or it joined it under a savepoint.
_OPENED, _JOINED, _SAVEPOINT = 0, 1, 2

# How many orders' last journaled state is remembered to skip a repeated one (newest kept).
_ORDER_STATES_KEPT = 10_000


class _Stamp:
    """``utcnow().isoformat()`` without a datetime per call: the text of the current second is
    built once, the microseconds are appended (the same text, at a fraction of the cost)."""

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self) -> str:
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self.second:
            self.prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self.second = second
        # isoformat() leaves the fraction out when it is zero; so does this.
        return f"{self.prefix}.{micro:06d}+00:00" if micro else f"{self.prefix}+00:00"


_now = _Stamp()


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        durability: Literal["process", "power"] = "process",
        on_write: Callable[[float], None] | None = None,
        checkpoint_interval_s: float = 1.0,
    ):
        self.path = path
        self._on_write = on_write
        self._open = False
        self._opened_at = 0.0
        self._waiters: list[asyncio.Future[None]] = []
        # The order state last written per client_order_id (broker id, status, filled, average
        # price): a broker event that repeats it (the fill that the submit answer already
        # carried) adds its fill row but not a second identical order state.
        self._order_states: dict[str, _OrderState] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if durability == "power" else "NORMAL"
            self._db.execute(f"PRAGMA synchronous={sync}")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Checkpoints run on a background thread (see Checkpointer), not inside a commit on
            # the event loop, where they cost a multi-millisecond fsync now and then.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {path} is unreadable: {exc}") from exc
        self._checkpointer = Checkpointer(path, interval_s=checkpoint_interval_s)

    # --- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this gateway's "
                f"{SCHEMA_VERSION}: upgrade the gateway; the journal was left untouched"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # One script, one transaction: a migration lands whole or not at all.
            self._db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[target]}\nPRAGMA user_version={target};\nCOMMIT;"
            )

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _tx(self, defer: bool = False, statements: int = 2) -> Iterator[sqlite3.Connection]:
        """One write. Committed before return, unless ``defer``: then it joins the open group
        transaction and is durable once ``await commit()`` returns (group commit: the writes of
        every signal decided in one loop tick share one commit). The hot paths use the same
        three steps without the context manager."""
        how = self._begin(statements)
        try:
            yield self._db
        except BaseException:
            self._undo(how)
            raise
        self._end(how, defer)

    def _begin(self, statements: int) -> int:
        """Start one write of ``statements`` statements; returns how to end or undo it."""
        if not self._open:
            # The write opens the transaction: undoing it is rolling the transaction back, so
            # it needs no savepoint of its own.
            self._db.execute("BEGIN IMMEDIATE")
            self._open = True
            self._opened_at = time.perf_counter()
            return _OPENED
        if statements <= 1:
            return _JOINED  # one statement is undone by SQLite itself when it fails
        self._db.execute("SAVEPOINT w")
        return _SAVEPOINT

    def _undo(self, how: int) -> None:
        """Undo the write that failed; the group's other writes stay."""
        self._order_states.clear()  # what the failed write remembered is not written
        if how == _OPENED:
            self._open = False
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        elif how == _SAVEPOINT:
            self._db.execute("ROLLBACK TO w")
            self._db.execute("RELEASE w")

    def _end(self, how: int, defer: bool) -> None:
        if how == _SAVEPOINT:
            self._db.execute("RELEASE w")
        if not defer:
            self._commit_now()

    def commit_now(self) -> None:
        self._commit_now()

    def _commit_now(self) -> None:
        if self._open:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._order_states.clear()  # what was written is no longer known
                raise
            self._open = False
            if self._on_write is not None:
                self._on_write(time.perf_counter() - self._opened_at)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def commit(self) -> None:
        """Wait until every write made so far is committed (one commit for all waiters)."""
        if not self._open:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._waiters:
            asyncio.get_running_loop().call_soon(self._commit_now)
        self._waiters.append(waiter)
        await waiter

    def schedule_commit(self) -> None:
        """Commit the open group soon, without waiting for it (broker events)."""
        if self._open and not self._waiters:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            loop.call_soon(self._commit_now)

    def close(self) -> None:
        self._commit_now()
        self._checkpointer.stop()
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    # --- signals and orders ------------------------------------------------------------------

    def record_intent(
        self,
        *,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        order: OrderRequest | None,
        valued_at: str | None,
        defer: bool = False,
    ) -> None:
        """The signal, and the order about to be sent: committed before the broker is called."""
        if order is not None:
            self._order_states.pop(order.client_order_id, None)
        now = _now()
        # Two inserts, and no savepoint when joining the open group: if the second fails, the
        # first is undone by deleting the row it created (the first failing undoes itself).
        how = self._begin(1)
        try:
            db = self._db
            db.execute(
                "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, "
                "client_order_id, received_at) VALUES (?,?,?,?,?,?,?)",
                (
                    signal_id,
                    body_hash,
                    body,
                    strategy,
                    symbol,
                    order.client_order_id if order else None,
                    now,
                ),
            )
        except BaseException:
            self._undo(how)
            raise
        try:
            if order is not None:
                db.execute(
                    "INSERT INTO orders (client_order_id, signal_id, symbol, side, quantity, "
                    "order_type, limit_price, time_in_force, valued_at, status, submit_count, "
                    "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?)",
                    (
                        order.client_order_id,
                        signal_id,
                        order.symbol,
                        order.side.value,
                        str(order.quantity),
                        order.order_type.value,
                        str(order.limit_price) if order.limit_price is not None else None,
                        order.time_in_force.value,
                        valued_at,
                        "pending_submit",
                        now,
                        now,
                    ),
                )
        except BaseException:
            if how == _JOINED:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("DELETE FROM signals WHERE signal_id=?", (signal_id,))
            self._undo(how)
            raise
        self._end(how, defer)

    def record_refusal(
        self,
        *,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        decision_json: str,
        outcome: str,
        defer: bool = False,
    ) -> None:
        """A signal refused before any order existed: one row."""
        now = _now()
        with self._tx(defer, statements=1) as db:
            db.execute(
                "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, decision, "
                "outcome, received_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (signal_id, body_hash, body, strategy, symbol, decision_json, outcome, now, now),
            )

    def record_decision(
        self,
        signal_id: str,
        decision_json: str,
        outcome: str,
        order: BrokerOrder | None = None,
        defer: bool = False,
    ) -> None:
        now = _now()
        state = None if order is None else self._new_state(order, None)
        how = self._begin(1 if state is None else 2)
        try:
            self._db.execute(
                "UPDATE signals SET decision=?, outcome=?, decided_at=? WHERE signal_id=?",
                (decision_json, outcome, now, signal_id),
            )
            if order is not None and state is not None:
                self._write_order_state(self._db, order, state, now)
        except BaseException:
            self._undo(how)
            raise
        self._end(how, defer)

    def record_order_rejected(self, client_order_id: str, reason: str) -> None:
        self._order_states.pop(client_order_id, None)
        now = _now()
        with self._tx() as db:
            db.execute(
                "UPDATE orders SET status='rejected', updated_at=? WHERE client_order_id=?",
                (now, client_order_id),
            )
            db.execute(
                "INSERT INTO order_events (client_order_id, status, detail, at) VALUES (?,?,?,?)",
                (client_order_id, "rejected", reason, now),
            )

    def _new_state(self, order: BrokerOrder, detail: str | None) -> _OrderState | None:
        """The order's state to journal, or None when this very state is journaled already
        (an event repeating the submit answer) and there is no detail to add."""
        state = (
            order.broker_order_id,
            order.status.value,
            str(order.filled_quantity),
            str(order.avg_fill_price) if order.avg_fill_price is not None else None,
        )
        if detail is None and self._order_states.get(order.client_order_id) == state:
            return None
        return state

    def _write_order_state(
        self,
        db: sqlite3.Connection,
        order: BrokerOrder,
        state: _OrderState,
        now: str,
        detail: str | None = None,
    ) -> None:
        coid = order.client_order_id
        cur = db.execute(
            "UPDATE orders SET broker_order_id=?, status=?, filled_quantity=?, avg_fill_price=?, "
            "updated_at=? WHERE client_order_id=?",
            (*state, now, coid),
        )
        if cur.rowcount == 0:
            # An order we did not send (adopted from the broker): journal it as external.
            db.execute(
                "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity, "
                "order_type, limit_price, time_in_force, status, filled_quantity, "
                "avg_fill_price, external, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,1,?,?)",
                (
                    order.client_order_id,
                    order.broker_order_id,
                    order.symbol,
                    order.side.value,
                    str(order.quantity),
                    order.order_type.value,
                    str(order.limit_price) if order.limit_price is not None else None,
                    order.time_in_force.value,
                    order.status.value,
                    str(order.filled_quantity),
                    str(order.avg_fill_price) if order.avg_fill_price is not None else None,
                    now,
                    now,
                ),
            )
        db.execute(
            "INSERT INTO order_events (client_order_id, status, filled_quantity, detail, at) "
            "VALUES (?,?,?,?,?)",
            (coid, state[1], state[2], detail, now),
        )
        states = self._order_states
        states.pop(coid, None)
        states[coid] = state
        if len(states) > _ORDER_STATES_KEPT:
            del states[next(iter(states))]  # the oldest: forgetting one only costs a rewrite

    def record_order_update(
        self, order: BrokerOrder, fill: Fill | None = None, detail: str | None = None
    ) -> None:
        self.record_order_updates([(order, fill, detail)])

    def record_order_updates(
        self, updates: list[tuple[BrokerOrder, Fill | None, str | None]], defer: bool = False
    ) -> None:
        """Broker events, many in one transaction (they arrive in bursts)."""
        now = _now()
        statements = 2  # a savepoint, unless this is one update of one statement
        if len(updates) == 1:
            order, fill, detail = updates[0]
            state = self._new_state(order, detail)
            statements = (state is not None) * 2 + (fill is not None)
        how = self._begin(statements)
        try:
            if len(updates) == 1:
                self._write_order_update(self._db, order, fill, detail, state, now)
            else:
                for order, fill, detail in updates:
                    # In order: an update is compared with the state the previous one wrote.
                    state = self._new_state(order, detail)
                    self._write_order_update(self._db, order, fill, detail, state, now)
        except BaseException:
            self._undo(how)
            raise
        self._end(how, defer)

    def _write_order_update(
        self,
        db: sqlite3.Connection,
        order: BrokerOrder,
        fill: Fill | None,
        detail: str | None,
        state: _OrderState | None,
        now: str,
    ) -> None:
        if state is not None:
            self._write_order_state(db, order, state, now, detail)
        if fill is not None:
            db.execute(
                "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, "
                "at) VALUES (?,?,?,?,?,?,?)",
                (
                    fill.client_order_id,
                    fill.fill_id,
                    fill.symbol,
                    fill.side.value,
                    str(fill.quantity),
                    str(fill.price),
                    fill.ts.isoformat(),
                ),
            )

    def mark_external(self, client_order_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE orders SET external=1 WHERE client_order_id=?", (client_order_id,))

    # --- generic events and key/values ------------------------------------------------------

    def record_event(self, kind: str, payload: dict[str, Any], at: datetime | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (kind, payload, at) VALUES (?,?,?)",
                (kind, json.dumps(payload, default=str), (at or utcnow()).isoformat()),
            )

    def put(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value, default=str)),
            )

    def get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # --- reads -------------------------------------------------------------------------------

    def signals(self) -> Iterator[StoredSignal]:
        for row in self._db.execute(
            "SELECT signal_id, body_hash, client_order_id, decision FROM signals"
        ):
            yield StoredSignal(*row)

    def undecided(self) -> list[tuple[str, str, str, str | None]]:
        """Signals whose intent was journaled but whose decision never was (a crash between):
        (signal_id, body_hash, body, client_order_id)."""
        return list(
            self._db.execute(
                "SELECT signal_id, body_hash, body, client_order_id FROM signals "
                "WHERE decision IS NULL ORDER BY rowid"
            )
        )

    def signal(self, signal_id: str) -> StoredSignal | None:
        row = self._db.execute(
            "SELECT signal_id, body_hash, client_order_id, decision FROM signals WHERE signal_id=?",
            (signal_id,),
        ).fetchone()
        return None if row is None else StoredSignal(*row)

    def orders(self, *, open_only: bool = False) -> list[StoredOrder]:
        sql = (
            "SELECT client_order_id, signal_id, broker_order_id, symbol, side, quantity, "
            "order_type, limit_price, time_in_force, valued_at, status, filled_quantity, "
            "avg_fill_price, external, submit_count FROM orders"
        )
        params: tuple[str, ...] = ()
        if open_only:
            sql += f" WHERE status IN ({','.join('?' * len(OPEN_STATUSES))})"
            params = OPEN_STATUSES
        return [StoredOrder(*row) for row in self._db.execute(sql + " ORDER BY rowid", params)]

    def events(self, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        if kind is None:
            rows = self._db.execute(
                "SELECT kind, payload, at FROM events ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._db.execute(
                "SELECT kind, payload, at FROM events WHERE kind=? ORDER BY id DESC LIMIT ?",
                (kind, limit),
            )
        return [{"kind": k, "at": at, **json.loads(p)} for k, p, at in rows]

    def summary(self) -> dict[str, Any]:
        """Counts for an operator (and the demo's closing lines)."""
        decisions = dict(
            self._db.execute(
                "SELECT COALESCE(outcome, 'undecided'), COUNT(*) FROM signals GROUP BY 1"
            ).fetchall()
        )
        statuses = dict(
            self._db.execute("SELECT status, COUNT(*) FROM orders GROUP BY 1").fetchall()
        )
        kinds = dict(self._db.execute("SELECT kind, COUNT(*) FROM events GROUP BY 1").fetchall())
        fills = self._db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        return {"signals": decisions, "orders": statuses, "fills": fills, "events": kinds}
