"""The orders a strategy reads (GET /v1/orders): the journal's rows, held at the book's state.

The book is the gateway's truth of the moment (a broker event moves it at once; its journal row
follows on the next loop tick, and waits in the backlog while the journal cannot write). So the
pending updates are written first, and an order the book holds, or knows closed, is shown as
the book has it: when the kill switch returns, the orders it cancelled are not open here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from brokers.base import BrokerOrder
from gateway.models import Order
from gateway.risk.book import Book
from gateway.store.journal import Journal, StoredOrder

ZERO_TEXT = "0"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _as_held(stored: StoredOrder, order: BrokerOrder) -> StoredOrder:
    """The journal's row with the book's state of the order."""
    return dataclasses.replace(
        stored,
        broker_order_id=order.broker_order_id or stored.broker_order_id,
        status=order.status.value,
        quantity=str(order.quantity),
        filled_quantity=str(order.filled_quantity),
        avg_fill_price=_text(order.avg_fill_price),
        limit_price=_text(order.limit_price),
        stop_price=_text(order.stop_price),
    )


class OrderViews:
    def __init__(self, journal: Journal, book: Book, flush: Callable[[], None]):
        self._journal = journal
        self._book = book
        self._flush = flush  # writes the broker updates applied but not yet journaled

    def _held(self, stored: StoredOrder) -> StoredOrder:
        tracked = self._book.orders.get(stored.client_order_id)
        return stored if tracked is None else _as_held(stored, tracked.order)

    def _closed_in_book(self, stored: StoredOrder) -> bool:
        coid = stored.client_order_id
        return coid in self._book.final_fills and coid not in self._book.orders

    def list(
        self,
        *,
        open_only: bool,
        strategies: Collection[str] | None,
        symbol: str | None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Order]:
        """Every order matching every filter given, oldest first (``strategies``: the order
        belongs to one of them; None: any); or a page of them: ``limit`` at most, after the
        order ``after`` (an open page may hold fewer: orders closed since their row was read
        are left out)."""
        self._flush()
        rows = self._journal.orders(
            open_only=open_only, strategies=strategies, symbol=symbol, limit=limit, after=after
        )
        if open_only:
            rows = [r for r in rows if not self._closed_in_book(r)]
        return [self._held(r).view() for r in rows]

    def stored(
        self, client_order_id: str, strategies: Collection[str] | None
    ) -> StoredOrder | None:
        """The order's row at the book's state; None when unknown or another strategy's (a
        bound token learns nothing of other strategies' orders)."""
        self._flush()
        stored = self._journal.order(client_order_id)
        if stored is None or (strategies is not None and stored.strategy not in strategies):
            return None
        return self._held(stored)

    def get(self, client_order_id: str, strategies: Collection[str] | None) -> Order | None:
        stored = self.stored(client_order_id, strategies)
        return None if stored is None else stored.view()
