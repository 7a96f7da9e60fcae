"""Reading the journal back: at start (recovery), and for the API's views.

A read that meets a damaged page raises JournalUnavailable (the API answers 503), never a bare
driver error.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from decimal import Decimal
from typing import Any

from gateway.models import FillRecord
from gateway.store.archived import archived_decision, has_archives
from gateway.store.db import Driver, SqliteDriver
from gateway.store.schema import (
    OPEN_STATUSES,
    ORDER_COLUMNS,
    JournalUnavailable,
    StoredOrder,
    StoredSignal,
)


def fill_record(row: tuple[Any, ...]) -> FillRecord:
    """A fills row (id, fill_id, client_order_id, strategy, signal_id, symbol, side, quantity,
    price, at) as the API gives it; a fill the broker gave no id is named by its row."""
    rowid, fill_id, coid, strategy, signal_id, symbol, side, qty, price, at = row
    return FillRecord(
        fill_id=fill_id or f"journal-{rowid}",
        client_order_id=coid,
        strategy=strategy,
        signal_id=signal_id,
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        ts=at,
    )


_FILLS_SQL = (
    "SELECT f.id, f.fill_id, f.client_order_id, o.strategy, o.signal_id, f.symbol, "
    "f.side, f.quantity, f.price, f.at FROM fills f "
    "LEFT JOIN orders o ON o.client_order_id = f.client_order_id"
)

_HALT_KINDS = ("halt.halt", "halt.resume", "halt.forced_resume")


class JournalReads:
    def __init__(self, db: Driver):
        self._db = db
        # Whether ``gateway archive`` ever moved signals out of this journal: learnt at the
        # first look-up, then kept (archiving refuses while a gateway holds the state dir, so
        # it cannot change under a running journal).
        self._archived: bool | None = None

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

    def archived_signal(self, signal_id: str) -> tuple[str, str] | None:
        """(body hash, first decision JSON) of a signal ``gateway archive`` moved to an archive
        file; None when it is not one (the stub in the live journal says which file)."""
        db = self._db
        if not isinstance(db, SqliteDriver):
            return None  # a pair's PostgreSQL journal is never archived
        try:
            if self._archived is None:
                self._archived = has_archives(db)
            if not self._archived:
                return None
            return archived_decision(db, db.path, signal_id)
        except db.errors as exc:
            raise JournalUnavailable(f"journal read failed: {exc}") from exc

    def orders(
        self,
        *,
        open_only: bool = False,
        strategies: Collection[str] | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[StoredOrder]:
        """The journal's orders, oldest first, matching every filter given (``strategies``:
        the order belongs to one of them); ``limit`` of them at most, those journaled after
        the order ``after`` (its client_order_id) when given."""
        where: list[str] = []
        params: list[str] = []
        if open_only:
            where.append(f"status IN ({','.join('?' * len(OPEN_STATUSES))})")
            params.extend(OPEN_STATUSES)
        if strategies is not None:
            where.append(f"strategy IN ({','.join('?' * len(strategies))})")
            params.extend(strategies)
        if symbol is not None:
            where.append("symbol = ?")
            params.append(symbol)
        if after is not None:
            where.append("rowid > (SELECT rowid FROM orders WHERE client_order_id = ?)")
            params.append(after)
        sql = f"SELECT {ORDER_COLUMNS} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [StoredOrder(*row) for row in self._rows(sql, tuple(params))]

    def order(self, client_order_id: str) -> StoredOrder | None:
        rows = self._rows(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id=?", (client_order_id,)
        )
        return StoredOrder(*rows[0]) if rows else None

    def fills(
        self,
        *,
        strategies: Collection[str] | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> list[FillRecord]:
        """The fills, oldest first (by row), with the strategy and signal of their order;
        ``limit`` of them at most, those journaled after the row ``after`` when given (see
        ``fill_row``)."""
        where, params = self._fill_filters(strategies, symbol)
        if after is not None:
            where.append("f.id > ?")
            params.append(after)
        sql = _FILLS_SQL
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY f.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [fill_record(row) for row in self._rows(sql, tuple(params))]

    def fill_row(self, fill_id: str, strategies: Collection[str] | None = None) -> int | None:
        """The journal row of the fill the API names ``fill_id`` (a paging cursor), among the
        fills ``strategies`` may see; None when there is none. A broker's fill id is unique per
        order only: if two orders share one, the later row wins (a page never repeats a fill,
        and ids that collide come from the same broker report anyway)."""
        where, params = self._fill_filters(strategies, None)
        named = fill_id.removeprefix("journal-")
        if named != fill_id and named.isdecimal():
            # A fill the broker gave no id is named by its row (see fill_record).
            where.append("f.id = ? AND COALESCE(f.fill_id, '') = ''")
            params.append(int(named))
        else:
            where.append("f.fill_id = ?")
            params.append(fill_id)
        sql = (
            "SELECT MAX(f.id) FROM fills f "
            "LEFT JOIN orders o ON o.client_order_id = f.client_order_id WHERE "
        )
        rows = self._rows(sql + " AND ".join(where), tuple(params))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    @staticmethod
    def _fill_filters(
        strategies: Collection[str] | None, symbol: str | None
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if strategies is not None:
            where.append(f"o.strategy IN ({','.join('?' * len(strategies))})")
            params.extend(strategies)
        if symbol is not None:
            where.append("f.symbol = ?")
            params.append(symbol)
        return where, params

    def fill_shortfalls(
        self, client_order_ids: Collection[str] | None = None
    ) -> list[tuple[StoredOrder, Decimal, set[str]]]:
        """Orders whose journaled filled quantity is more than their journaled fills add up
        to (a fill event lost before it reached the journal), each with that sum and the
        fill ids journaled, oldest first; of ``client_order_ids`` only, when given. SQLite picks
        the candidates in doubles (a shortfall under a double's precision, 1e-15 of the
        quantity, goes unseen) and Decimal decides for them: the journal is scanned in SQLite,
        not in Python (0.8 s against 4.7 s at a million signals)."""
        where, params = "filled_quantity <> '0'", tuple[str, ...]()
        if client_order_ids is not None:
            if not client_order_ids:
                return []
            where += f" AND client_order_id IN ({','.join('?' * len(client_order_ids))})"
            params = tuple(client_order_ids)
        candidates = self._rows(
            f"SELECT {ORDER_COLUMNS} FROM orders o WHERE {where} "
            "AND CAST(filled_quantity AS REAL) > COALESCE((SELECT SUM(CAST(f.quantity AS REAL)) "
            "FROM fills f WHERE f.client_order_id = o.client_order_id), 0) "
            "ORDER BY rowid",
            params,
        )
        short = []
        for row in candidates:
            stored = StoredOrder(*row)
            fills = self._rows(
                "SELECT fill_id, quantity FROM fills WHERE client_order_id = ?",
                (stored.client_order_id,),
            )
            total = sum((Decimal(qty) for _, qty in fills), Decimal(0))
            if Decimal(stored.filled_quantity) > total:
                short.append((stored, total, {fill_id for fill_id, _ in fills}))
        return short

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
