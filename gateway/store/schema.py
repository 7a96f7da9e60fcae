"""The journal's on-disk shape: the versioned schema and its migrations, opening a journal
(integrity check first), the rows it reads back, and the background WAL checkpointer."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from brokers.base import BrokerOrder, OrderRequest
from gateway.models import Order
from gateway.store.seal import remove_seal, unsealed_because

log = logging.getLogger("gateway.store.journal")

ARCHIVE_TABLES = """
CREATE TABLE IF NOT EXISTS archives (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cutoff TEXT NOT NULL,
    stream_first INTEGER,
    stream_last INTEGER,
    archived_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_signals (
    signal_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    archive INTEGER NOT NULL
) WITHOUT ROWID;
"""

SCHEMA_VERSION = 3

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE signals (
        signal_id TEXT PRIMARY KEY,
        body_hash TEXT NOT NULL,
        body TEXT NOT NULL,
        strategy TEXT NOT NULL,
        symbol TEXT NOT NULL,
        client_order_id TEXT,
        decision TEXT,
        outcome TEXT,
        received_at TEXT NOT NULL,
        decided_at TEXT
    );
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        signal_id TEXT,
        broker_order_id TEXT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity TEXT NOT NULL,
        order_type TEXT NOT NULL,
        limit_price TEXT,
        time_in_force TEXT NOT NULL,
        valued_at TEXT,
        status TEXT NOT NULL,
        filled_quantity TEXT NOT NULL DEFAULT '0',
        avg_fill_price TEXT,
        external INTEGER NOT NULL DEFAULT 0,
        submit_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX orders_status ON orders(status);
    CREATE TABLE order_events (
        id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        status TEXT NOT NULL,
        filled_quantity TEXT,
        detail TEXT,
        at TEXT NOT NULL
    );
    CREATE TABLE fills (
        id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        fill_id TEXT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity TEXT NOT NULL,
        price TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX events_kind ON events(kind);
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # Orders a strategy manages: whose an order is, its stop and its bracket parent; fills
    # recognised when the broker reports one twice; and the event log strategies follow
    # (GET /v1/events), whose seq is the event id: written in the transaction of the change
    # it reports, so the journal is the event log and nothing lives only in memory.
    2: """
    ALTER TABLE orders ADD COLUMN strategy TEXT;
    ALTER TABLE orders ADD COLUMN stop_price TEXT;
    ALTER TABLE orders ADD COLUMN parent_id TEXT;
    ALTER TABLE orders ADD COLUMN role TEXT;
    UPDATE orders SET strategy = (
        SELECT strategy FROM signals WHERE signals.signal_id = orders.signal_id
    );
    CREATE INDEX orders_strategy ON orders(strategy);
    CREATE INDEX orders_parent ON orders(parent_id) WHERE parent_id IS NOT NULL;
    DELETE FROM fills WHERE fill_id <> '' AND id NOT IN (
        SELECT MIN(id) FROM fills WHERE fill_id <> '' GROUP BY client_order_id, fill_id
    );
    CREATE UNIQUE INDEX fills_once ON fills(client_order_id, fill_id) WHERE fill_id <> '';
    CREATE INDEX fills_order ON fills(client_order_id);
    CREATE TABLE stream (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        strategy TEXT,
        payload TEXT NOT NULL,
        at TEXT NOT NULL
    );
    """,
    # 3: the tables `gateway archive` keeps in the live journal (gateway.store.archived): a
    # stub per archived signal, so its signal_id is never taken as new. Part of the schema
    # (not created by the first archive) so that a gateway too old to read the stubs refuses
    # the journal as newer than itself rather than deciding an archived signal_id again.
    3: ARCHIVE_TABLES,
}

OPEN_STATUSES = ("new", "accepted", "partially_filled", "pending_cancel", "pending_submit")


class Checkpointer:
    """Copies the WAL into the database file from its own connection and thread, in PASSIVE
    mode (never blocks the writer), so the WAL stays small without stalling a signal."""

    def __init__(self, path: Path, *, interval_s: float):
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.warning("journal checkpoint failed: %s", exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class JournalError(Exception):
    """The journal cannot be opened or used (corrupt, or written by a newer version)."""


class JournalUnavailable(Exception):
    """A journal write failed (disk full, I/O error): what it carried is not durable. The
    journal rolled back and stays usable; it writes again once the cause is gone."""


@dataclass(frozen=True, slots=True)
class StoredSignal:
    signal_id: str
    body_hash: str
    client_order_id: str | None
    decision: str | None  # the exact JSON of the first decision; None if never decided


@dataclass(frozen=True, slots=True)
class StoredOrder:
    client_order_id: str
    signal_id: str | None
    broker_order_id: str | None
    symbol: str
    side: str
    quantity: str
    order_type: str
    limit_price: str | None
    time_in_force: str
    valued_at: str | None
    status: str
    filled_quantity: str
    avg_fill_price: str | None
    external: bool
    submit_count: int
    strategy: str | None = None
    stop_price: str | None = None
    parent_id: str | None = None
    role: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def view_status(self) -> str:
        # "pending_submit" (and "lost") are the journal's own states: the intent, before any
        # broker answer. Clients see the broker's vocabulary.
        return "new" if self.status in ("pending_submit", "lost") else self.status

    def view(self) -> Order:
        """The API's Order (GET /v1/orders, the event stream)."""
        return Order(
            client_order_id=self.client_order_id,
            broker_order_id=self.broker_order_id or "",
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            filled_quantity=self.filled_quantity,
            status=self.view_status(),
            limit_price=self.limit_price,
            avg_fill_price=self.avg_fill_price,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            stop_price=self.stop_price,
            strategy=self.strategy,
            signal_id=self.signal_id,
            parent_id=self.parent_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def to_broker_order(self) -> BrokerOrder:
        status = self.view_status()
        return BrokerOrder(
            client_order_id=self.client_order_id,
            broker_order_id=self.broker_order_id or "",
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            filled_quantity=self.filled_quantity,
            status=status,
            limit_price=self.limit_price,
            avg_fill_price=self.avg_fill_price,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            stop_price=self.stop_price,
        )

    def to_request(self) -> OrderRequest:
        """The order as it was (or was to be) sent: for an intent whose fate is unknown."""
        return OrderRequest(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            order_type=self.order_type,
            limit_price=self.limit_price,
            time_in_force=self.time_in_force,
            stop_price=self.stop_price,
        )


# A signal whose order is about to be sent (an intent, or a replace's): undecided until its
# decision is written.
INSERT_UNDECIDED_SIGNAL = (
    "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, client_order_id, "
    "received_at) VALUES (?,?,?,?,?,?,?)"
)

# Every column of StoredOrder, in its field order (SELECT and RETURNING lists).
ORDER_COLUMNS = (
    "client_order_id, signal_id, broker_order_id, symbol, side, quantity, order_type, "
    "limit_price, time_in_force, valued_at, status, filled_quantity, avg_fill_price, external, "
    "submit_count, strategy, stop_price, parent_id, role, created_at, updated_at"
)


def open_journal(path: Path, durability: str) -> sqlite3.Connection:
    """Open (or create) the journal: integrity-checked if it existed and no seal vouches for
    it (see ``gateway.store.seal``), WAL, migrated."""
    existed = path.exists() and path.stat().st_size > 0
    unsealed = unsealed_because(path) if existed else None
    try:
        remove_seal(path)  # before the first write: a crash in this run leaves no seal behind
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot remove its seal before writing: {exc}") from exc
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if unsealed is not None:
            _check_integrity(db, path, unsealed)
        elif existed:  # an operator reading the log learns why this start took no time
            log.info("journal %s: sealed by a clean stop, unchanged since: no full check", path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if durability == 'power' else 'NORMAL'}")
        db.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on a background thread (see Checkpointer), not inside a commit on the
        # event loop, where they cost a multi-millisecond fsync now and then.
        db.execute("PRAGMA wal_autocheckpoint=0")
        migrate(db, path)
        # The start asks for the signals decided by nobody (a crash between intent and
        # decision): a partial index holds only those, so the question does not read every
        # signal ever journaled. Not a schema change (any version reads the file as before).
        db.execute(
            "CREATE INDEX IF NOT EXISTS signals_undecided ON signals(decision) "
            "WHERE decision IS NULL"
        )
    except sqlite3.DatabaseError as exc:
        db.close()
        raise JournalError(f"journal {path} is unreadable: {exc}") from exc
    except JournalError:
        db.close()
        raise
    return db


def _check_integrity(db: sqlite3.Connection, path: Path, why: str) -> None:
    """SQLite's full integrity check (it reads the whole file: seconds per million signals)."""
    log.warning("journal %s: running the full integrity check: %s", path, why)
    started = time.monotonic()
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise JournalError(
            f"journal {path} is unreadable: it fails SQLite's integrity check "
            f"({'; '.join(problems)}): "
            "restore it from a backup, or move it aside and start with --new-journal"
        )
    log.info("journal integrity check passed in %.1f s", time.monotonic() - started)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal {path} has schema version {version}, newer than this gateway's "
            f"{SCHEMA_VERSION}: upgrade the gateway; the journal was left untouched"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # One script, one transaction: a migration lands whole or not at all.
        db.executescript(
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[target]}\nPRAGMA user_version={target};\nCOMMIT;"
        )
