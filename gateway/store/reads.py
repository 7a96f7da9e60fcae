"""Reading the journal back: at start (recovery), and for the API's views.

A read that meets a damaged page raises JournalUnavailable (the API answers 503), never a bare
driver error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from gateway.store.db import Driver
from gateway.store.schema import OPEN_STATUSES, JournalUnavailable, StoredOrder, StoredSignal

_HALT_KINDS = ("halt.halt", "halt.resume", "halt.forced_resume")


class JournalReads:
    def __init__(self, db: Driver):
        self._db = db

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except self._db.errors as exc:
            raise JournalUnavailable(f"journal read failed: {exc}") from exc

    def get(self, key: str) -> Any:
        rows = self._rows("SELECT value FROM kv WHERE key=?", (key,))
        return None if not rows else json.loads(rows[0][0])

    def signals(self) -> Iterator[StoredSignal]:
        for row in self._rows(
            "SELECT signal_id, body_hash, client_order_id, decision FROM signals"
        ):
            yield StoredSignal(*row)

    def undecided(self) -> list[tuple[str, str, str, str | None]]:
        """Signals whose intent was journaled but whose decision never was (a crash between):
        (signal_id, body_hash, body, client_order_id)."""
        return self._rows(
            "SELECT signal_id, body_hash, body, client_order_id FROM signals "
            "WHERE decision IS NULL ORDER BY rowid"
        )

    def signal(self, signal_id: str) -> StoredSignal | None:
        rows = self._rows(
            "SELECT signal_id, body_hash, client_order_id, decision FROM signals WHERE signal_id=?",
            (signal_id,),
        )
        return None if not rows else StoredSignal(*rows[0])

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
        return [StoredOrder(*row) for row in self._rows(sql + " ORDER BY rowid", params)]

    def events(self, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        if kind is None:
            rows = self._rows(
                "SELECT kind, payload, at FROM events ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._rows(
                "SELECT kind, payload, at FROM events WHERE kind=? ORDER BY id DESC LIMIT ?",
                (kind, limit),
            )
        return [{"kind": k, "at": at, **json.loads(p)} for k, p, at in rows]

    def open_halt(self) -> dict[str, Any] | None:
        """The last halt the journal records with no resume after it, or None."""
        rows = self._rows(
            f"SELECT kind, payload, at FROM events WHERE kind IN ({','.join('?' * 3)}) "
            "ORDER BY id DESC LIMIT 1",
            _HALT_KINDS,
        )
        if not rows or rows[0][0] != "halt.halt":
            return None
        _, payload, at = rows[0]
        return {"at": at, **json.loads(payload)}

    def is_empty(self) -> bool:
        """True when nothing was ever journaled here (no signal, order, event or key)."""
        for table in ("signals", "orders", "events", "kv"):
            if self._rows(f"SELECT 1 FROM {table} LIMIT 1"):
                return False
        return True

    def summary(self) -> dict[str, Any]:
        """Counts for an operator (and the demo's closing lines)."""
        decisions = dict(
            self._rows("SELECT COALESCE(outcome, 'undecided'), COUNT(*) FROM signals GROUP BY 1")
        )
        statuses = dict(self._rows("SELECT status, COUNT(*) FROM orders GROUP BY 1"))
        kinds = dict(self._rows("SELECT kind, COUNT(*) FROM events GROUP BY 1"))
        fills = self._rows("SELECT COUNT(*) FROM fills")[0][0]
        return {"signals": decisions, "orders": statuses, "fills": fills, "events": kinds}
