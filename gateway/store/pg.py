"""An active/standby pair's journal in PostgreSQL: the same tables and SQL as SQLite's, in one
schema per account (``journal_<account>``), written on ONE psycopg session: the session that
holds the account's advisory lock (see ``gateway.firm.pair``). Every intent is committed in that
session, so once the session is gone (terminated, the network cut) no commit can succeed: the
journal's failure path halts the gateway (``journal_failure``), and nothing reconnects it.

Imported only for a pair: a gateway without a ``firm:`` section never loads psycopg.

Differences from SQLite, kept here:

- ``?`` placeholders become ``%s`` (cached per statement text);
- a failed statement makes PostgreSQL abort the whole transaction: the driver rolls it back at
  once and reports ``in_transaction`` False, so the journal loses the group (hard writes fail,
  soft writes are kept), as it does when SQLite rolls back by itself on a full disk;
- the schema version is the ``journal_schema`` table (SQLite: ``user_version``); each migration
  runs once, in one transaction, under an advisory lock;
- ``rowid`` (insertion order, read back by recovery) is a bigserial column of that name, last
  (SQLite's is hidden from ``SELECT *``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from gateway.store.events import StreamEvent
from gateway.store.schema import JournalError, JournalUnavailable
from gateway.store.stream import STATE

PgConn = psycopg.Connection[TupleRow]

# Version 1 is the shape of SQLite's journal at its version 2 (orders a strategy manages, fills
# recorded once, the event stream): a migration here follows each one there.
SCHEMA_VERSION = 1
MIGRATION_LOCK = (0x4A4E, 1)  # (classid, objid): the journal schema's migrations

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE signals (
            signal_id text PRIMARY KEY,
            body_hash text NOT NULL,
            body text NOT NULL,
            strategy text NOT NULL,
            symbol text NOT NULL,
            client_order_id text,
            decision text,
            outcome text,
            received_at text NOT NULL,
            decided_at text,
            rowid bigserial NOT NULL
        )""",
        """CREATE TABLE orders (
            client_order_id text PRIMARY KEY,
            signal_id text,
            broker_order_id text,
            symbol text NOT NULL,
            side text NOT NULL,
            quantity text NOT NULL,
            order_type text NOT NULL,
            limit_price text,
            time_in_force text NOT NULL,
            valued_at text,
            status text NOT NULL,
            filled_quantity text NOT NULL DEFAULT '0',
            avg_fill_price text,
            external integer NOT NULL DEFAULT 0,
            submit_count integer NOT NULL DEFAULT 0,
            created_at text NOT NULL,
            updated_at text NOT NULL,
            strategy text,
            stop_price text,
            parent_id text,
            role text,
            rowid bigserial NOT NULL
        )""",
        "CREATE INDEX orders_status ON orders(status)",
        "CREATE INDEX orders_strategy ON orders(strategy)",
        "CREATE INDEX orders_parent ON orders(parent_id) WHERE parent_id IS NOT NULL",
        """CREATE TABLE order_events (
            id bigserial PRIMARY KEY,
            client_order_id text NOT NULL,
            status text NOT NULL,
            filled_quantity text,
            detail text,
            at text NOT NULL
        )""",
        """CREATE TABLE fills (
            id bigserial PRIMARY KEY,
            client_order_id text NOT NULL,
            fill_id text,
            symbol text NOT NULL,
            side text NOT NULL,
            quantity text NOT NULL,
            price text NOT NULL,
            at text NOT NULL
        )""",
        "CREATE UNIQUE INDEX fills_once ON fills(client_order_id, fill_id) WHERE fill_id <> ''",
        "CREATE INDEX fills_order ON fills(client_order_id)",
        """CREATE TABLE stream (
            seq bigserial PRIMARY KEY,
            type text NOT NULL,
            strategy text,
            payload text NOT NULL,
            at text NOT NULL
        )""",
        """CREATE TABLE events (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            payload text NOT NULL,
            at text NOT NULL
        )""",
        "CREATE INDEX events_kind ON events(kind)",
        "CREATE TABLE kv (key text PRIMARY KEY, value text NOT NULL)",
    ),
}


def schema_name(account: str) -> str:
    return f"journal_{account}"


class PgDriver:
    """One psycopg session (autocommit; transactions opened by BEGIN) as the journal's backend."""

    errors: tuple[type[BaseException], ...] = (psycopg.Error,)
    begin_sql: str = "BEGIN"
    closing_sql: str | None = None

    def __init__(self, conn: PgConn) -> None:
        self.conn = conn
        self._texts: dict[str, str] = {}

    @property
    def in_transaction(self) -> bool:
        status = self.conn.info.transaction_status
        return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def execute(self, text: str, params: Sequence[Any] = ()) -> psycopg.Cursor[TupleRow]:
        query = self._texts.get(text)
        if query is None:
            query = self._texts[text] = text.replace("?", "%s")
        try:
            return self.conn.execute(query, params)  # type: ignore[call-overload,no-any-return]
        except psycopg.Error:
            # PostgreSQL keeps nothing of a transaction a statement failed in: say so at once.
            if self.conn.info.transaction_status == TransactionStatus.INERROR:
                with contextlib.suppress(psycopg.Error):
                    self.conn.execute("ROLLBACK")
            raise

    def is_outage(self, exc: BaseException) -> bool:
        """The server or the session failing (disk full, shut down, terminated, the network
        gone), as opposed to a statement's own error."""
        if not isinstance(exc, psycopg.Error):
            return False
        if isinstance(exc, psycopg.OperationalError | psycopg.InternalError):
            return True
        return self.conn.broken or self.conn.closed

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()


def open_pg_journal(conn: PgConn, account: str) -> PgDriver:
    """The account's journal schema on ``conn`` (created and migrated when needed), as the
    session's search path: the journal's unqualified SQL reaches this account's tables only."""
    schema = sql.Identifier(schema_name(account))
    try:
        row = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema_name(account),)
        ).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("SET search_path TO {}").format(schema))
        migrate(conn, account)
    except psycopg.Error as exc:
        raise JournalError(
            f"the pair's journal in PostgreSQL (schema {schema_name(account)}) cannot be "
            f"opened: {' '.join(str(exc).split())}"
        ) from exc
    return PgDriver(conn)


def _version(conn: PgConn) -> int:
    exists = conn.execute("SELECT to_regclass('journal_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM journal_schema").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(conn: PgConn, account: str) -> None:
    version = _version(conn)
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"the pair's journal (schema {schema_name(account)}) has schema version {version}, "
            f"newer than this gateway's {SCHEMA_VERSION}: upgrade the gateway; the journal was "
            "left untouched"
        )
    if version == SCHEMA_VERSION:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        conn.execute("CREATE TABLE IF NOT EXISTS journal_schema (version integer NOT NULL)")
        for target in range(_version(conn) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)  # type: ignore[call-overload]
            conn.execute("INSERT INTO journal_schema (version) VALUES (%s)", (target,))


class PgEventLog:
    """The pair's event log read back (GET /v1/events) on a session of its own: autocommit,
    read-only, so each read sees what is committed and never the writer's open group. One
    writer session commits the rows in seq order, so "after the last id" misses nothing."""

    def __init__(self, dsn: str, account: str) -> None:
        try:
            self._conn: PgConn = psycopg.connect(dsn, autocommit=True)
            self._conn.execute("SET default_transaction_read_only = on")
            self._conn.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_name(account)))
            )
        except psycopg.Error as exc:
            raise JournalUnavailable(f"event log unreadable: {exc}") from exc

    def _rows(self, text: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self._conn.execute(text, params).fetchall()  # type: ignore[call-overload,no-any-return]
        except psycopg.Error as exc:
            raise JournalUnavailable(f"event log read failed: {exc}") from exc

    def last_seq(self) -> int:
        rows = self._rows("SELECT COALESCE(MAX(seq), 0) FROM stream", ())
        return int(rows[0][0])

    def events_after(
        self, seq: int, limit: int, strategies: Collection[str] | None = None
    ) -> list[StreamEvent]:
        text = "SELECT seq, type, strategy, payload FROM stream WHERE seq > %s"
        params: list[object] = [seq]
        if strategies is not None:
            text += " AND (type = %s OR strategy = ANY(%s))"
            params.extend([STATE, list(strategies)])
        rows = self._rows(text + " ORDER BY seq LIMIT %s", (*params, limit))
        return [StreamEvent(*row) for row in rows]

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
