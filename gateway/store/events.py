"""Reading the event log (the ``stream`` table) back, for GET /v1/events.

The reader has its own read-only connection to the journal file. The writer's connection sees
the rows of its open group transaction before they are committed; a subscriber must never see
an event that could still roll back, and a connection of its own sees only committed rows.

Events ``gateway archive`` moved out live in archive files, each holding one contiguous range of
ids below every live one (see gateway.store.archive): a read after an id older than the first
live event reads the archives in order first, then the live journal, so a client resuming from
an old id still gets every event after it exactly once, in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.store.archived import archive_dir, open_archive, stream_ranges
from gateway.store.schema import JournalUnavailable
from gateway.store.stream import STATE


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One row of the event log: its id (the journal's seq), type, owner and JSON text."""

    seq: int
    type: str
    strategy: str | None
    data: str

    def visible_to(self, strategies: Collection[str] | None) -> bool:
        """State events reach everyone; the others only those following their strategy."""
        return strategies is None or self.type == STATE or self.strategy in strategies


class EventSource(Protocol):
    """What the feed reads the event log through (SQLite's EventLog, a pair's PgEventLog)."""

    def last_seq(self) -> int: ...

    def events_after(
        self, seq: int, limit: int, strategies: Collection[str] | None = None
    ) -> list[StreamEvent]: ...

    def close(self) -> None: ...


class EventLog:
    def __init__(self, path: Path):
        try:
            # mode=ro: this connection can never write (nor take the writer's lock).
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"event log unreadable: {exc}") from exc
        self._dir = archive_dir(path)
        self._archives: dict[str, sqlite3.Connection] = {}  # opened at their first read
        # The archives' id ranges, read at the first read (as every other read, a damaged
        # journal raises then): once, since archiving refuses while a gateway holds the state
        # dir.
        self._known: list[tuple[str, int, int]] | None = None

    @property
    def _ranges(self) -> list[tuple[str, int, int]]:
        if self._known is None:
            try:
                self._known = stream_ranges(self._db)
            except sqlite3.Error as exc:
                raise JournalUnavailable(f"event log read failed: {exc}") from exc
        return self._known

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"event log read failed: {exc}") from exc

    def last_seq(self) -> int:
        """The id of the last committed event (0 when there is none), archived ones counted:
        ids keep growing after an archive emptied the live stream."""
        rows = self._rows("SELECT COALESCE(MAX(seq), 0) FROM stream", ())
        ranges = self._ranges
        return max(int(rows[0][0]), ranges[-1][2] if ranges else 0)

    def events_after(
        self, seq: int, limit: int, strategies: Collection[str] | None = None
    ) -> list[StreamEvent]:
        """Up to ``limit`` committed events with an id above ``seq``, in order; with
        ``strategies``, only theirs and the state events."""
        found: list[StreamEvent] = []
        for name, _, last in self._ranges:
            if last <= seq:
                continue
            found += self._archived(name, seq, limit - len(found), strategies)
            if len(found) >= limit:
                return found
            seq = last  # this archive has nothing more after seq: on to the next
        sql, params = _after_sql(seq, strategies)
        rows = self._rows(sql, (*params, limit - len(found)))
        return found + [StreamEvent(*row) for row in rows]

    def _archived(
        self, name: str, seq: int, limit: int, strategies: Collection[str] | None
    ) -> list[StreamEvent]:
        db = self._archives.get(name)
        if db is None:
            db = self._archives[name] = open_archive(self._dir / name)
        sql, params = _after_sql(seq, strategies)
        try:
            rows = db.execute(sql, (*params, limit)).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"archive {name} unreadable: {exc}") from exc
        return [StreamEvent(*row) for row in rows]

    def close(self) -> None:
        for db in self._archives.values():
            db.close()
        self._archives.clear()
        self._db.close()


def _after_sql(seq: int, strategies: Collection[str] | None) -> tuple[str, list[object]]:
    sql = "SELECT seq, type, strategy, payload FROM stream WHERE seq > ?"
    params: list[object] = [seq]
    if strategies is not None:
        sql += f" AND (type = ? OR strategy IN ({','.join('?' * len(strategies))}))"
        params.append(STATE)
        params.extend(strategies)
    return sql + " ORDER BY seq LIMIT ?", params
