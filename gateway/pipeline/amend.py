"""Cancelling an order a strategy sent (DELETE /v1/orders/{client_order_id}), and the per-order
lock that keeps a cancel and a replace of one order from crossing at the broker.

    order open in the book (or of unknown fate)? -> journal the intent (committed)
        -> broker.cancel -> look it up
        -> canceled / pending_cancel          : the order, as the broker has it
        -> filled / expired / rejected        : OrderNotOpen, with the order (the truth)
        -> the broker refused, order still open: CancelRefused
        -> the broker unreachable, no look-up : BrokerUnreachable (only the intent is journaled)
        -> of unknown fate, not at the broker : OrderNotSettled; cancelled as soon as it is found

A cancel is allowed in every state, HALTED included: it only lowers risk. The answer comes after
the broker's: the order's state is looked up and applied like any broker update (the book, the
journal, the event stream), so a cancel that raced a fill ends with the fills the broker
reports and the position follows them. What a look-up cannot settle, reconciliation does.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Collection, Container

from brokers.base import Broker, BrokerOrder, OrderStatus
from brokers.errors import BrokerError, OrderNotFound, OrderRejected
from gateway.errors import (
    BrokerUnreachable,
    CancelRefused,
    OrderNotOpen,
    OrderNotSettled,
    OrderUnknown,
)
from gateway.models import Order
from gateway.pipeline.order_views import OrderViews
from gateway.risk.book import Book
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.amend")


class OrderLocks:
    """One lock per order being cancelled or replaced; gone once nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, client_order_id: str) -> asyncio.Lock:
        lock = self._locks.get(client_order_id)
        if lock is None:
            lock = self._locks[client_order_id] = asyncio.Lock()
        return lock


async def look_up(broker: Broker, client_order_id: str) -> BrokerOrder | None:
    """The broker's state of the order; None when it cannot say (not found, or unreachable)."""
    try:
        return await broker.get_order(client_order_id)
    except BrokerError as exc:
        log.warning("order look-up failed: %s", exc, extra={"client_order_id": client_order_id})
        return None


class Cancels:
    def __init__(
        self,
        *,
        broker: Broker,
        journal: Journal,
        book: Book,
        views: OrderViews,
        locks: OrderLocks,
        apply_order: Callable[[BrokerOrder], None],
        unknown: Container[str] = (),
        cancel_when_found: Callable[[str], None] = lambda client_order_id: None,
    ):
        self._broker = broker
        self._journal = journal
        self._book = book
        self._views = views
        self._locks = locks
        self._apply = apply_order
        self._unknown = unknown  # orders whose submit answer was lost (pipeline.settle)
        self._cancel_when_found = cancel_when_found

    def _view(self, client_order_id: str) -> Order | None:
        return self._views.get(client_order_id, None)

    async def cancel(
        self, client_order_id: str, strategies: Collection[str] | None, by: str
    ) -> Order:
        """Cancel the order; raises OrderUnknown, OrderNotOpen, CancelRefused,
        BrokerUnreachable or JournalUnavailable (nothing sent) as the answer is."""
        coid = client_order_id
        if self._views.stored(coid, strategies) is None:
            raise OrderUnknown(coid)
        async with self._locks(coid):
            tracked = self._book.orders.get(coid)
            if tracked is None and coid not in self._unknown:
                self._not_open(coid)
            status = tracked.order.status.value if tracked else "pending_submit"
            # Hard write, committed before the broker hears of it (raises when it cannot).
            self._journal.record_cancel_intent(coid, status, by)
            try:
                now = await self._send(coid)
            except OrderNotOpen:
                if tracked is not None or coid not in self._unknown:
                    raise
                # Its submit answer was lost and the broker does not show it (yet).
                self._cancel_when_found(coid)
                raise OrderNotSettled(
                    f"order {coid}: its submit answer was lost and the broker does not show it "
                    "yet; it is cancelled as soon as it is found",
                    self._view(coid),
                ) from None
        if now.is_open:
            # The broker took the cancel but has not done it yet: its event will say.
            now = now.model_copy(update={"status": OrderStatus.PENDING_CANCEL})
        self._apply(now)
        view = self._view(coid)
        if not now.is_open and now.status is not OrderStatus.CANCELED:
            raise OrderNotOpen(f"order {coid} is {now.status.value}", view)
        assert view is not None  # it was found above, and orders are never deleted
        return view

    def _not_open(self, coid: str) -> None:
        view = self._view(coid)
        if view is not None and view.status == OrderStatus.NEW.value:
            # The journal's intent, its submit still on the wire: there is nothing to cancel yet.
            raise OrderNotSettled(f"order {coid} is being submitted; cancel it once placed", view)
        raise OrderNotOpen(f"order {coid} is not open", view)

    async def _send(self, coid: str) -> BrokerOrder:
        """The cancel at the broker, and the order's state after it."""
        try:
            await self._broker.cancel(coid)
        except (OrderRejected, OrderNotFound) as exc:
            now = await look_up(self._broker, coid)
            if now is not None and now.status is OrderStatus.CANCELED:
                # Cancelled: by this cancel's first attempt, whose answer was lost (the retry
                # found it done), or by another hand. Either way it is what was asked.
                return now
            if now is None or not now.is_open:
                if now is not None:
                    self._apply(now)
                raise OrderNotOpen(
                    f"the broker did not cancel it: {exc}", self._view(coid)
                ) from exc
            self._apply(now)
            raise CancelRefused(f"the broker refused the cancel: {exc}", self._view(coid)) from exc
        except BrokerError as exc:
            # The answer is lost, or the broker was not reached: only a look-up can tell.
            now = await look_up(self._broker, coid)
            if now is None or (now.is_open and now.status is not OrderStatus.PENDING_CANCEL):
                raise BrokerUnreachable(f"cancel not confirmed: {exc}") from exc
            return now
        found = await look_up(self._broker, coid)
        if found is None:
            tracked = self._book.orders.get(coid)
            if tracked is None:  # an event ended it meanwhile
                final = self._views.stored(coid, None)
                assert final is not None
                return final.to_broker_order()
            return tracked.order
        return found
