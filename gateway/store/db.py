"""The journal's database seam: one ``Journal`` over two backends.

The journal's SQL is shared (``?`` placeholders, ``INSERT ... ON CONFLICT``, a ``rowid`` column
to keep insertion order); what differs lives in a driver: how a transaction starts, which errors
are a storage outage rather than a bug in a statement, and what closing does. ``SqliteDriver``
wraps sqlite3 (the embedded default: PRAGMAs, the integrity check and the WAL checkpointer stay
with it); ``gateway.store.pg.PgDriver`` wraps one psycopg session (an active/standby pair's
journal; imported only for a pair, so a single host never loads psycopg).

A driver that drops a whole transaction on a failed statement (PostgreSQL does) reports
``in_transaction`` False afterwards; the journal's transactions then lose the group, as they do
when SQLite rolls back by itself on a full disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.store.seal import write_seal


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def close(self) -> None: ...


class Driver(Protocol):
    # The exception classes a statement of this backend raises (caught, then classified).
    errors: tuple[type[BaseException], ...]
    # The statement that opens a write transaction (through ``execute``, like every other).
    begin_sql: str
    # A statement run just before closing (SQLite: the final WAL checkpoint), or None.
    closing_sql: str | None

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def is_outage(self, exc: BaseException) -> bool:
        """A failure of the storage (full, I/O, session gone), not a bug in a statement."""
        ...

    def close(self) -> None: ...


class SqliteDriver:
    """sqlite3 as the journal's backend: the file under ``state_dir``."""

    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    begin_sql: str = "BEGIN IMMEDIATE"  # the write lock now, not at the first write
    closing_sql: str | None = "PRAGMA wal_checkpoint(TRUNCATE)"

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error) and not isinstance(
            exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
        )

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            return  # not closed cleanly: no seal, the next start runs the full check
        write_seal(self.path)  # the last connection is closed: vouch for the file as it is
