"""The simulated broker's account on disk, so that it plays the paper broker that kept running
while the gateway restarted (SIGTERM or kill -9): same cash, positions, orders and ids.

SQLite in WAL mode with ``synchronous=NORMAL``, like the journal: a committed transaction
survives kill -9 of the process (not a power cut). Written incrementally: each change of the
account is written before the broker call that made it returns, in a transaction that calls
made at the same time share (group commit: ``commits``).

Tables (the schema version is ``PRAGMA user_version``):

- ``account(id = 1, cash, next_id)``: cash as exact decimal text; ``next_id`` is N of the next
  ``sim-N`` broker order id, so no id is ever handed out twice.
- ``positions(symbol, qty, avg_price)``: signed quantity (short < 0); a flat symbol has no row.
- ``orders(client_order_id, broker_order_id, symbol, side, quantity, filled_quantity, status,
  limit_price, avg_fill_price, order_type, time_in_force, stop_price, triggered, fills,
  oco_group, parent_id, leg_role)``: every order the broker took, resting or final, in the
  order it took them (rowid). The last five are the simulator's own bookkeeping
  (``OrderMeta``): whether a stop has triggered, how many fills the order had (the next fill's
  id), its one-cancels-other group, and for a bracket's leg its entry's client_order_id and its
  role (``stop_loss`` or ``take_profit``).
- ``submit_counts(client_order_id, count)``: how often each client_order_id reached submit(),
  so a drill can prove that nothing was sent twice.
- ``executions``: every fill with its fill id, written with the order it filled (see
  ``executions.py``; version 4).

Older files are migrated in place on open, the new columns added with their neutral values:
version 1 (before stops, partial fills and OCO groups: no stop, not triggered, one fill for an
order that filled anything, no group), version 2 (before brackets: no parent, no role) and
version 3 (before executions: an empty table; the fills made before it are not known).

A file that cannot be read (not SQLite, corrupt, another program's database, a newer schema)
raises ``BrokerError(code="bad_state")`` naming it: never a silent fresh account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from brokers.base import BrokerOrder, Fill
from brokers.errors import BrokerError, BrokerUnavailable
from brokers.simulated import executions
from brokers.simulated.state_writes import Checkpointer, GroupCommit

log = logging.getLogger("brokers.simulated.state")

SCHEMA_VERSION = 4
DEFAULT_FILE_NAME = "sim_broker.sqlite3"

_SCHEMA = """
CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cash TEXT NOT NULL,
    next_id INTEGER NOT NULL
);
CREATE TABLE positions (
    symbol TEXT PRIMARY KEY,
    qty TEXT NOT NULL,
    avg_price TEXT NOT NULL
);
CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    broker_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    status TEXT NOT NULL,
    limit_price TEXT,
    avg_fill_price TEXT,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    stop_price TEXT,
    triggered INTEGER NOT NULL DEFAULT 0,
    fills INTEGER NOT NULL DEFAULT 0,
    oco_group TEXT,
    parent_id TEXT,
    leg_role TEXT
);
CREATE TABLE submit_counts (
    client_order_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""

# Version 1 had the orders table without the last four columns: added on open.
_MIGRATE_1_TO_2 = (
    "ALTER TABLE orders ADD COLUMN stop_price TEXT",
    "ALTER TABLE orders ADD COLUMN triggered INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE orders ADD COLUMN fills INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE orders ADD COLUMN oco_group TEXT",
    # The id of a fill is f"{broker_order_id}-{n}": version 1 filled orders whole, as fill 1.
    "UPDATE orders SET fills = 1 WHERE filled_quantity != '0'",
)
# Version 2 had no brackets: a leg's entry and role, added on open.
_MIGRATE_2_TO_3 = (
    "ALTER TABLE orders ADD COLUMN parent_id TEXT",
    "ALTER TABLE orders ADD COLUMN leg_role TEXT",
)
# Version 3 kept no executions: the table, empty (the fills made before are not known).
_MIGRATE_3_TO_4 = (executions.CREATE_TABLE,)
LEG_ROLES = ("stop_loss", "take_profit")

_BROKER_ORDER_COLUMNS = (
    "client_order_id",
    "broker_order_id",
    "symbol",
    "side",
    "quantity",
    "filled_quantity",
    "status",
    "limit_price",
    "avg_fill_price",
    "order_type",
    "time_in_force",
    "stop_price",
)
_ORDER_COLUMNS = (
    *_BROKER_ORDER_COLUMNS,
    "triggered",
    "fills",
    "oco_group",
    "parent_id",
    "leg_role",
)
_UPSERT_COUNT = (
    "INSERT INTO submit_counts (client_order_id, count) VALUES (?, ?) "
    "ON CONFLICT(client_order_id) DO UPDATE SET count = excluded.count"
)
# An upsert keeps the row (and its rowid, hence the order's place in the list) on an update.
_UPSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ORDER_COLUMNS)}) "
    "ON CONFLICT(client_order_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ORDER_COLUMNS[1:])
)


@dataclass(frozen=True, slots=True)
class OrderMeta:
    """What the simulator keeps about an order beyond ``BrokerOrder``."""

    triggered: bool = False  # a stop or stop_limit whose stop the market reached
    fills: int = 0  # fills so far; the next fill's id is f"{broker_order_id}-{fills + 1}"
    oco_group: str | None = None  # one-cancels-other: the group it belongs to
    parent: str | None = None  # a bracket's leg: its entry's client_order_id
    role: str | None = None  # a bracket's leg: one of LEG_ROLES


NO_META = OrderMeta()


@dataclass(slots=True)
class AccountSnapshot:
    """Everything the file holds, as the broker keeps it in memory."""

    cash: Decimal
    next_id: int
    positions: dict[str, tuple[Decimal, Decimal]]  # symbol -> (signed qty, avg price)
    orders: list[tuple[BrokerOrder, OrderMeta]]
    submit_counts: dict[str, int]


@dataclass(slots=True)
class Changes:
    """What one broker call changed; written as one transaction."""

    account: tuple[Decimal, int] | None = None  # (cash, next_id) when either changed
    positions: dict[str, tuple[Decimal, Decimal] | None] = field(default_factory=dict)  # None: flat
    orders: dict[str, tuple[BrokerOrder, OrderMeta]] = field(default_factory=dict)
    submit_counts: dict[str, int] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)  # executions made, with their orders

    def __bool__(self) -> bool:
        return bool(
            self.account is not None
            or self.positions
            or self.orders
            or self.submit_counts
            or self.fills
        )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class StateFile:
    """One simulated account in one SQLite file; created with ``initial_cash`` when new."""

    def __init__(self, path: Path, *, initial_cash: Decimal):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._initial_cash = initial_cash
        self._commits = GroupCommit(self._conn, self._write_failed)
        self.open()

    def _unreadable(self, reason: object) -> BrokerError:
        return BrokerError(
            f"simulated broker state {self.path} is unreadable: {reason}", code="bad_state"
        )

    def open(self) -> None:
        """Open the file (creating it when missing); a no-op when it is open already."""
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._unreadable(exc) from exc
        try:
            version = self._check(db)  # before anything writes to a file that may not be ours
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run on a thread of their own (Checkpointer), not inside a commit on
            # the event loop, where their fsync would stall a submit for milliseconds.
            db.execute("PRAGMA wal_autocheckpoint=0")
            if version == 0:
                self._create(db)
            elif version < SCHEMA_VERSION:
                _migrate(db, version)
        except sqlite3.Error as exc:
            db.close()
            raise self._unreadable(exc) from exc
        except BrokerError:
            db.close()
            raise
        self._db = db
        self._checkpointer = Checkpointer(self.path)

    def _check(self, db: sqlite3.Connection) -> int:
        """The file's schema version (0: new and empty); ``bad_state`` when not one of ours."""
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise self._unreadable(
                f"schema version {version} is newer than this broker's {SCHEMA_VERSION}"
            )
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise self._unreadable("not a simulated broker state file (unknown tables)")
        return version

    def _create(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(executions.CREATE_TABLE)
            db.execute(
                "INSERT INTO account (id, cash, next_id) VALUES (1, ?, 1)",
                (str(self._initial_cash),),
            )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def close(self) -> None:
        if self._db is not None and self._commits.open:
            with contextlib.suppress(BrokerUnavailable):
                self._commits.commit_now()  # its waiters learn whether it reached the disk
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        self.open()
        assert self._db is not None
        return self._db

    def load(self) -> AccountSnapshot:
        """The account as the file holds it; ``bad_state`` when any of it cannot be read."""
        db = self._conn()
        try:
            row = db.execute("SELECT cash, next_id FROM account WHERE id = 1").fetchone()
            if row is None:
                raise self._unreadable("the account row is missing")
            positions = {
                symbol: (Decimal(qty), Decimal(avg))
                for symbol, qty, avg in db.execute("SELECT symbol, qty, avg_price FROM positions")
            }
            cursor = db.execute(f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders ORDER BY rowid")
            orders = [_order_from_row(r) for r in cursor]
            counts = {c: int(n) for c, n in db.execute("SELECT * FROM submit_counts")}
            return AccountSnapshot(Decimal(row[0]), int(row[1]), positions, orders, counts)
        except (sqlite3.Error, InvalidOperation, ValidationError, ValueError, TypeError) as exc:
            raise self._unreadable(exc) from exc

    def write(self, changes: Changes) -> None:
        """Commit ``changes`` (with the open group, if any) before returning; a failed write
        raises BrokerUnavailable."""
        self._commits.write(lambda db: _write_changes(db, changes))

    def stage(self, changes: Changes) -> asyncio.Future[None]:
        """Write ``changes`` into the open group; await the future before acknowledging
        them (see ``commits``)."""
        return self._commits.stage(lambda db: _write_changes(db, changes))

    def commit_soon(self) -> None:
        self._commits.commit_soon()

    def _write_failed(self, exc: sqlite3.Error) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"simulated broker state {self.path}: write failed: {exc}", code="state_write"
        )

    def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        """The recorded fills of these orders (see ``executions.py``)."""
        try:
            return executions.read(self._conn(), client_order_ids)
        except (sqlite3.Error, ValidationError, ValueError) as exc:
            raise BrokerUnavailable(
                f"simulated broker state {self.path}: executions unreadable: {exc}",
                code="state_read",
            ) from exc


def _write_changes(db: sqlite3.Connection, changes: Changes) -> None:
    if changes.account is not None:
        cash, next_id = changes.account
        db.execute("UPDATE account SET cash = ?, next_id = ? WHERE id = 1", (str(cash), next_id))
    for symbol, position in changes.positions.items():
        if position is None:
            db.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))
        else:
            db.execute(
                "INSERT INTO positions (symbol, qty, avg_price) VALUES (?, ?, ?) "
                "ON CONFLICT(symbol) DO UPDATE SET qty = excluded.qty, "
                "avg_price = excluded.avg_price",
                (symbol, str(position[0]), str(position[1])),
            )
    orders = [_order_row(*o) for o in changes.orders.values()]
    if len(orders) == 1:
        db.execute(_UPSERT_ORDER, orders[0])  # executemany's set-up costs more for one row
    elif orders:
        db.executemany(_UPSERT_ORDER, orders)
    counts = list(changes.submit_counts.items())
    if counts:
        db.executemany(_UPSERT_COUNT, counts)
    executions.write(db, changes.fills)


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (a full disk, an I/O error): then there is nothing to do.
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _migrate(db: sqlite3.Connection, version: int) -> None:
    steps = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3, 3: _MIGRATE_3_TO_4}
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version, SCHEMA_VERSION):
            for statement in steps[step]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _order_from_row(row: tuple[object, ...]) -> tuple[BrokerOrder, OrderMeta]:
    n = len(_BROKER_ORDER_COLUMNS)
    order = BrokerOrder.model_validate(dict(zip(_BROKER_ORDER_COLUMNS, row[:n], strict=True)))
    triggered, fills, oco_group, parent, role = row[n:]
    if not isinstance(fills, int) or fills < 0 or triggered not in (0, 1):
        raise ValueError(f"order {order.client_order_id}: triggered or fills unreadable")
    if oco_group is not None and not isinstance(oco_group, str):
        raise ValueError(f"order {order.client_order_id}: oco_group unreadable")
    leg = (parent, role)
    if leg != (None, None) and not (isinstance(parent, str) and role in LEG_ROLES):
        raise ValueError(f"order {order.client_order_id}: parent_id or leg_role unreadable")
    return order, OrderMeta(
        bool(triggered),
        fills,
        oco_group,
        parent if isinstance(parent, str) else None,
        role if isinstance(role, str) else None,
    )


def _order_row(order: BrokerOrder, meta: OrderMeta) -> tuple[str | int | None, ...]:
    return (
        order.client_order_id,
        order.broker_order_id,
        order.symbol,
        order.side.value,
        str(order.quantity),
        str(order.filled_quantity),
        order.status.value,
        _text(order.limit_price),
        _text(order.avg_fill_price),
        order.order_type.value,
        order.time_in_force.value,
        _text(order.stop_price),
        int(meta.triggered),
        meta.fills,
        meta.oco_group,
        meta.parent,
        meta.role,
    )
