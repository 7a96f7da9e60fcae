"""The broker's event stream applied to the gateway: quotes into the quote book, order updates
into the book and the journal, link changes into the quote book's freshness.

Order updates are applied at once and journaled together with the other updates of the same
loop tick (one transaction). A status is counted in the metrics when it is new for its order, so
one filled order counts once however many times the broker repeats it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

from brokers.base import (
    Broker,
    BrokerEvent,
    BrokerOrder,
    ConnectionEvent,
    Fill,
    OrderEvent,
    QuoteEvent,
)
from gateway.ops.metrics import GatewayMetrics
from gateway.risk.book import Book
from gateway.risk.quotes import QuoteBook
from gateway.store.journal import Journal
from gateway.store.orders import OrderUpdate

log = logging.getLogger("gateway.pipeline.broker_events")


class BrokerEvents:
    def __init__(
        self,
        *,
        broker: Broker,
        book: Book,
        quotes: QuoteBook,
        journal: Journal,
        metrics: GatewayMetrics,
        evaluate_risk: Callable[[], object],
    ):
        self._broker = broker
        self._book = book
        self._quotes = quotes
        self._journal = journal
        self._metrics = metrics
        self._evaluate_risk = evaluate_risk
        self._pending: list[OrderUpdate] = []
        # Told of every order update before it is applied (orders of unknown fate settle).
        self.on_order: Callable[[BrokerOrder], object] = lambda order: None
        # Told of every order update that filled something (legs follow their position).
        self.on_fill: Callable[[BrokerOrder], object] = lambda order: None
        # Called when the broker link comes back: the service reconciles before trusting the book.
        self.on_reconnect: Callable[[], None] | None = None
        self.ready = False

    async def consume(self) -> None:
        async for event in self._broker.events():
            try:
                self.handle(event)
            except Exception:
                # A bad event must not kill the loop that keeps the book honest; it is counted.
                log.exception("broker event could not be applied", extra={"event": repr(event)})
                self._metrics.observe_failure("broker_error")

    def handle(self, event: BrokerEvent) -> None:
        if isinstance(event, QuoteEvent):
            self._quotes.update(event.quote)
            if event.quote.symbol in self._book.holdings:
                self._evaluate_risk()
        elif isinstance(event, OrderEvent):
            self.on_order(event.order)
            self.apply(event.order, event.fill, event.reason)
        elif isinstance(event, ConnectionEvent):
            self._quotes.set_link(event.connected)
            self._metrics.set_broker_connected(event.connected)
            self._journal.record_event(
                "broker_connection", {"connected": event.connected, "reason": event.reason}
            )
            if event.connected and self.ready and self.on_reconnect is not None:
                self.on_reconnect()

    def apply(
        self,
        order: BrokerOrder,
        fill: Fill | None = None,
        reason: str | None = None,
        *,
        valued_at: Decimal | None = None,
        record: bool = True,
    ) -> None:
        """Apply at once; journal with the other updates of this loop tick, in one transaction
        (unless ``record`` is false: the caller journals the state with its decision)."""
        book = self._book
        coid = order.client_order_id
        before = book.orders.get(coid)
        repeat_of_final = before is None and coid in book.final_fills
        delta = book.apply_order(order, valued_at=valued_at)
        if record:
            if not self._pending:
                asyncio.get_running_loop().call_soon(self.flush)
            self._pending.append((order, fill, reason))
        if not repeat_of_final and (before is None or before.order.status is not order.status):
            self._metrics.observe_order_status(order.status.value)
        if delta > 0:
            self._evaluate_risk()
            self.on_fill(order)

    def flush(self) -> None:
        updates, self._pending = self._pending, []
        if updates:
            self._journal.record_order_updates(updates, defer=True)
            self._journal.schedule_commit()
