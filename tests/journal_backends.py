"""The journal's two backends for its tests: SQLite (the file) and PostgreSQL (an
active/standby pair's journal, on a fresh database per test). A journal is named by a path in
both: PostgreSQL keeps the journal of each path in a schema of its own, so two paths are two
journals and reopening a path reopens its journal, as with SQLite files."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store.db import Driver, SqliteDriver
from gateway.store.journal import Journal


def account_of(path: Path) -> str:
    return "t" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


_OPENED: dict[int, Backend] = {}


def committed(journal: Journal, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """What another session reads from ``journal`` (opened by a Backend): what was committed."""
    return _OPENED[id(journal)].rows(journal.path, sql, *args)


class Backend:
    def __init__(self, name: str, dsn: str | None = None) -> None:
        self.name = name
        self.dsn = dsn
        self.integrity_error: type[Exception] = sqlite3.IntegrityError
        # What using a closed journal's connection raises.
        self.closed_error: type[Exception] = sqlite3.ProgrammingError
        if name == "postgres":
            import psycopg

            self.integrity_error = psycopg.IntegrityError
            self.closed_error = psycopg.OperationalError

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"

    def driver(self, path: Path) -> Driver | None:
        """What GatewayService takes as ``journal_db``: None for SQLite (its file in the state
        dir), a PostgreSQL driver on a session of its own otherwise."""
        if not self.postgres:
            return None
        import psycopg

        from gateway.store.pg import open_pg_journal

        assert self.dsn is not None
        return open_pg_journal(psycopg.connect(self.dsn, autocommit=True), account_of(path))

    def service_kwargs(self, path: Path) -> dict[str, Any]:
        """GatewayService's journal arguments: nothing for SQLite; for PostgreSQL the journal
        (``journal_db``) and its event log read back on a session of its own (``event_log``)."""
        if not self.postgres:
            return {}
        from gateway.store.pg import PgEventLog

        dsn, account = self.dsn, account_of(path)
        assert dsn is not None
        return {"journal_db": self.driver(path), "event_log": lambda: PgEventLog(dsn, account)}

    def open(self, path: Path, **kwargs: Any) -> Journal:
        journal = self._open(path, **kwargs)
        _OPENED[id(journal)] = self
        return journal

    def _open(self, path: Path, **kwargs: Any) -> Journal:
        if not self.postgres:
            return Journal(path, **kwargs)
        import psycopg

        from gateway.store.pg import open_pg_journal

        assert self.dsn is not None
        conn = psycopg.connect(self.dsn, autocommit=True)
        kwargs.pop("durability", None)
        kwargs.pop("checkpoint_interval_s", None)
        return Journal(path, db=open_pg_journal(conn, account_of(path)), **kwargs)

    def rows(self, path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """What another session reads: only what was committed."""
        if not self.postgres:
            other = sqlite3.connect(path)
            try:
                return list(other.execute(sql, args))
            finally:
                other.close()
        import psycopg
        from psycopg import sql as pgsql

        from gateway.store.pg import schema_name

        assert self.dsn is not None
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            schema = pgsql.Identifier(schema_name(account_of(path)))
            conn.execute(pgsql.SQL("SET search_path TO {}").format(schema))
            cur = conn.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]
            rows = list(cur.fetchall())
            names = [c.name for c in cur.description or ()]
            if names and names[-1] == "rowid" and "rowid" not in sql:
                rows = [row[:-1] for row in rows]  # SQLite's rowid is hidden from SELECT *
            return rows


def outage(db: object, message: str) -> Exception:
    """The error the backend behind ``db`` (a driver, or a wrapper of one) reports when its
    storage fails: what the journal must treat as an outage."""
    if type(db).__module__ == "gateway.store.pg" or hasattr(db, "conn"):
        import psycopg

        return psycopg.OperationalError(message)
    return sqlite3.OperationalError(message)


class PgDiskFull:
    """Stands in for a PostgreSQL journal's driver whose server has a full disk: every write
    statement fails with DiskFull (53100) and, as PostgreSQL does, aborts its transaction."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.split(None, 1)[0] in ("INSERT", "UPDATE", "DELETE"):
            import psycopg

            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise psycopg.errors.DiskFull("could not extend file: disk full")
        return self.db.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def fill_up(journal: Journal) -> None:
    """The journal's storage is full from now on (until ``free``)."""
    if isinstance(journal._db, SqliteDriver):
        pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
        journal._db.execute(f"PRAGMA max_page_count={pages}")  # the next page is refused
        return
    full = PgDiskFull(journal._db)
    journal._db = journal._tx.db = full  # type: ignore[assignment]


def free(journal: Journal) -> None:
    if not isinstance(journal._db, PgDiskFull):
        journal._db.execute("PRAGMA max_page_count=1073741823")
        return
    real = journal._db.db  # type: ignore[attr-defined]
    journal._db = journal._tx.db = real


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The journal's backend for one test: SQLite, then PostgreSQL on a fresh database (the
    local server CI starts: see tests/firm/conftest.py), dropped afterwards."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    import psycopg

    from tests.firm.conftest import HOST, _server_user

    user = _server_user()
    name = f"journal_test_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{user}@{HOST}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield Backend("postgres", f"postgresql://{user}@{HOST}/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
