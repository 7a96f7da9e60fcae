"""Journal faults for tests: a connection whose COMMIT fails as SQLite reports a full disk or
an I/O error at commit time (the transaction is rolled back)."""

from __future__ import annotations

import sqlite3

from tests.journal_backends import outage

INTENT = "INSERT INTO orders"
DECISION = "UPDATE signals SET decision"


class CommitFails:
    """Stands in for the journal's connection. A COMMIT fails with "disk I/O error" (and the
    transaction is rolled back) when the transaction holds a statement starting with one of
    ``carrying`` (all of them when empty), ``times`` times; everything else goes to the real
    connection."""

    def __init__(
        self, db: sqlite3.Connection, *, carrying: tuple[str, ...] = (), times: int = 1
    ) -> None:
        self._db = db
        self._carrying = carrying
        self.times = times
        self._statements: list[str] = []

    def _matches(self) -> bool:
        if not self._carrying:
            return True
        return any(s.startswith(self._carrying) for s in self._statements)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith("BEGIN"):
            self._statements = []
        elif sql == "COMMIT":
            failing = self.times > 0 and self._matches()
            self._statements = []
            if failing:
                self.times -= 1
                self._db.execute("ROLLBACK")
                raise outage(self._db, "disk I/O error")
        else:
            self._statements.append(sql)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def install(journal: object, **kwargs: object) -> CommitFails:
    """Put a CommitFails between ``journal`` and its SQLite connection; returns it."""
    real = journal._db  # type: ignore[attr-defined]
    failing = CommitFails(real, **kwargs)  # type: ignore[arg-type]
    journal._db = failing  # type: ignore[attr-defined]
    journal._tx.db = failing  # type: ignore[attr-defined]
    return failing


class StatementFails:
    """Stands in for the journal's connection. A statement starting with one of ``failing``
    fails with "database or disk is full" (as SQLITE_FULL does: the statement is undone, the
    transaction stays), ``times`` times each; everything else goes to the real connection."""

    def __init__(self, db: sqlite3.Connection, *, failing: tuple[str, ...], times: int = 1):
        self._db = db
        self._left = dict.fromkeys(failing, times)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        for prefix, left in self._left.items():
            if left > 0 and sql.startswith(prefix):
                self._left[prefix] = left - 1
                raise outage(self._db, "database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def install_statement_fails(journal: object, **kwargs: object) -> StatementFails:
    """Put a StatementFails between ``journal`` and its SQLite connection; returns it."""
    real = journal._db  # type: ignore[attr-defined]
    failing = StatementFails(real, **kwargs)  # type: ignore[arg-type]
    journal._db = failing  # type: ignore[attr-defined]
    journal._tx.db = failing  # type: ignore[attr-defined]
    return failing
