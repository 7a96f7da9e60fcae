"""Reading the event log (the ``stream`` table) back, for GET /v1/events.

The reader has its own read-only connection to the journal file. The writer's connection sees
the rows of its open group transaction before they are committed; a subscriber must never see
an event that could still roll back, and a connection of its own sees only committed rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"event log read failed: {exc}") from exc

    def last_seq(self) -> int:
        """The id of the last committed event (0 when there is none)."""
        rows = self._rows("SELECT COALESCE(MAX(seq), 0) FROM stream", ())
        return int(rows[0][0])

    def events_after(
        self, seq: int, limit: int, strategies: Collection[str] | None = None
    ) -> list[StreamEvent]:
        """Up to ``limit`` committed events with an id above ``seq``, in order; with
        ``strategies``, only theirs and the state events."""
        sql = "SELECT seq, type, strategy, payload FROM stream WHERE seq > ?"
        params: list[object] = [seq]
        if strategies is not None:
            sql += f" AND (type = ? OR strategy IN ({','.join('?' * len(strategies))}))"
            params.append(STATE)
            params.extend(strategies)
        rows = self._rows(sql + " ORDER BY seq LIMIT ?", (*params, limit))
        return [StreamEvent(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
