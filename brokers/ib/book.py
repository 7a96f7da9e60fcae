"""The IB adapter's own record of orders, keyed by client order id (IB's ``orderRef``).

ib_async forgets every trade when the socket drops (``Wrapper.reset``), and IB itself knows no
client order id, so the adapter keeps its own book: one ``TrackedOrder`` per client order id,
holding the IB order id that ``submit`` returned (never changed afterwards), the last status and
the fills seen (deduplicated by execution id, because IB repeats executions after a reconnect).

After a (re)connect the book is reconciled from what IB reports: open orders, completed orders
and executions, matched by orderRef (a restarted process adopts this client id's open orders).
An order that was sent, never acknowledged, and that IB reports nowhere never reached IB: it is
forgotten, so a retried submit may place it. Statuses only move forward: a late "Submitted"
never reopens an order that is already filled or cancelled. Fills are counted once whichever
of orderStatus and execDetails comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ib_async import Execution, Trade
from ib_async import Fill as IBFill

from brokers.base import (
    BrokerOrder,
    Fill,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_decimal,
)
from brokers.ib import mapping as m
from brokers.ib.mapping import TERMINAL

log = logging.getLogger(__name__)


@dataclass
class TrackedOrder:
    client_order_id: str
    order_id: int
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    time_in_force: TimeInForce
    stop_price: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW
    perm_id: int = 0
    reason: str | None = None
    # A bracket leg: its parent's IB order id and its OCA group (sent again on a modify)
    parent_order_id: int = 0
    oca_group: str = ""
    # A modify in flight: IB's answers to it (openOrder acks, or the error refusing it)
    modifying: bool = False
    acks: int = 0
    refusal: str | None = None
    # Two accounts of the same fills, because IB sends orderStatus and execDetails in either
    # order: the executions seen (exact, deduplicated) and IB's cumulative figures.
    fill_ids: set[str] = field(default_factory=set)
    exec_qty: Decimal = Decimal(0)
    exec_notional: Decimal = Decimal(0)
    ib_filled: Decimal = Decimal(0)
    ib_avg_price: Decimal | None = None

    @property
    def broker_order_id(self) -> str:
        return str(self.order_id)

    @property
    def filled(self) -> Decimal:
        return max(self.exec_qty, self.ib_filled)

    @property
    def avg_price(self) -> Decimal | None:
        if self.ib_filled > self.exec_qty or (self.ib_avg_price and not self.exec_qty):
            return self.ib_avg_price
        return self.exec_notional / self.exec_qty if self.exec_qty else None

    def snapshot(self) -> BrokerOrder:
        return BrokerOrder(
            client_order_id=self.client_order_id,
            broker_order_id=self.broker_order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            filled_quantity=min(self.filled, self.quantity),
            status=self.status,
            limit_price=self.limit_price,
            avg_fill_price=self.avg_price,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            stop_price=self.stop_price,
        )

    def set_status(self, status: OrderStatus, reason: str | None = None) -> bool:
        """Move to ``status`` unless the order is already done; True when anything changed."""
        if self.status in TERMINAL or status == self.status:
            return False
        if status is OrderStatus.ACCEPTED and self.filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.CANCELED and self.filled >= self.quantity:
            status = OrderStatus.FILLED  # IB reports a cancel for orders that filled
        self.status = status
        if reason:
            self.reason = reason
        return True

    def set_filled(self, filled: Decimal, avg_price: Decimal | None) -> bool:
        """Take IB's cumulative figures (orderStatus); True when the order moved."""
        if filled <= self.ib_filled:
            return False
        before = self.filled
        self.ib_filled = filled
        if avg_price is not None:
            self.ib_avg_price = avg_price
        self._status_from_fills()
        return self.filled > before

    def add_fill(self, fill_id: str, qty: Decimal, price: Decimal, ts: datetime) -> Fill | None:
        """Record one execution; None when it was seen before (IB repeats them)."""
        if fill_id in self.fill_ids:
            return None
        self.fill_ids.add(fill_id)
        self.exec_qty += qty
        self.exec_notional += price * qty
        self._status_from_fills()
        return Fill(
            client_order_id=self.client_order_id,
            broker_order_id=self.broker_order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=qty,
            price=price,
            ts=ts,
            fill_id=fill_id,
        )

    def take_terms(self, quantity: Decimal, limit: Decimal | None, stop: Decimal | None) -> bool:
        """Take the quantity and prices IB reports for the order (a modify it confirmed, or
        one typed into TWS); True when anything changed."""
        if (quantity, limit, stop) == (self.quantity, self.limit_price, self.stop_price):
            return False
        self.quantity, self.limit_price, self.stop_price = quantity, limit, stop
        self._status_from_fills()
        return True

    def _status_from_fills(self) -> None:
        # A "Cancelled" is not the last word: IB sends it for orders whose executions show
        # them filled (a cancel racing the fill), and the executions are the truth.
        if self.status is OrderStatus.CANCELED and self.filled >= self.quantity:
            self.status = OrderStatus.FILLED
        if self.status in TERMINAL:
            return
        if self.filled >= self.quantity:
            self.status = OrderStatus.FILLED
        elif self.filled > 0 and self.status in (OrderStatus.NEW, OrderStatus.ACCEPTED):
            self.status = OrderStatus.PARTIALLY_FILLED


class OrderBook:
    """Orders by client order id and by IB order id, and a way to wait for the next change.

    ib_async reports through plain callbacks, so a change is signalled by setting an
    ``asyncio.Event`` and replacing it (callable without awaiting, unlike a Condition).
    """

    def __init__(self) -> None:
        self._by_ref: dict[str, TrackedOrder] = {}
        self._by_id: dict[int, TrackedOrder] = {}
        self._changed = asyncio.Event()
        self.max_order_id = 0

    def add(self, order: TrackedOrder) -> None:
        self._by_ref[order.client_order_id] = order
        self._by_id[order.order_id] = order
        self.max_order_id = max(self.max_order_id, order.order_id)

    def forget(self, order: TrackedOrder) -> None:
        self._by_ref.pop(order.client_order_id, None)
        self._by_id.pop(order.order_id, None)  # max_order_id stays: the id is never reused

    def by_ref(self, client_order_id: str) -> TrackedOrder | None:
        return self._by_ref.get(client_order_id)

    def by_id(self, order_id: int) -> TrackedOrder | None:
        return self._by_id.get(order_id)

    def open(self) -> list[TrackedOrder]:
        return [o for o in self._by_ref.values() if o.status.is_open]

    def on_trade(self, trade: Trade, client_id: int, open_order: bool = False) -> list[OrderEvent]:
        """An order status or (``open_order``) an open order from ib_async; an event when it
        changed ours."""
        tracked = self.by_ref(trade.order.orderRef)
        if tracked is None or (trade.order.clientId, trade.order.orderId) != (
            client_id,
            tracked.order_id,
        ):
            return []  # not ours: another client id, or typed into TWS
        if open_order:
            tracked.acks += 1  # IB's answer to a placeOrder or a modify
        self.notify()
        if not apply_trade(tracked, trade):
            return []
        return [OrderEvent(order=tracked.snapshot(), reason=tracked.reason)]

    def on_exec(self, ex: Execution, client_id: int) -> list[OrderEvent]:
        """An execution; an event with its fill the first time it is seen."""
        tracked = self.by_ref(ex.orderRef)
        if tracked is None or (ex.clientId, ex.orderId) != (client_id, tracked.order_id):
            return []
        self.notify()
        fill = tracked.add_fill(ex.execId, to_decimal(ex.shares), to_decimal(ex.price), ex.time)
        return [] if fill is None else [OrderEvent(order=tracked.snapshot(), fill=fill)]

    def reconcile(
        self, trades: Iterable[Trade], fills: Iterable[IBFill], client_id: int
    ) -> list[OrderEvent]:
        """After a connect: adopt this client's orders by orderRef (after a restart of this
        process the book starts empty), bring known ones up to date, and take the executions
        missed while away. Returns what changed, for the event stream."""
        events: list[OrderEvent] = []
        trades, fills = list(trades), list(fills)
        reported = {t.order.orderRef for t in trades} | {f.execution.orderRef for f in fills}
        for trade in trades:
            o = trade.order
            if (
                o.orderRef
                and self.by_ref(o.orderRef) is None
                and o.orderId > 0
                and (o.clientId == client_id)
            ):
                self._adopt(trade)
        # executions before statuses, so a fill missed while away comes with its Fill
        for fill in fills:
            if fill.execution.clientId == client_id:
                self.max_order_id = max(self.max_order_id, fill.execution.orderId)
            events += self.on_exec(fill.execution, client_id)
        for trade in trades:
            tracked = self.by_ref(trade.order.orderRef) if trade.order.orderRef else None
            # completed orders carry no order id or client id: check they are the same order
            if tracked is not None and _same_order(tracked, trade) and apply_trade(tracked, trade):
                events.append(OrderEvent(order=tracked.snapshot(), reason=tracked.reason))
        for lost in [o for o in self.open() if o.status is OrderStatus.NEW]:
            if lost.client_order_id not in reported:
                # Sent, never acknowledged, and IB reports it neither open nor completed: it
                # never reached IB. Forgetting it lets a retried submit place it (get_order
                # answers None), which cannot make a second order.
                log.warning("IB order %s (%s) never reached IB; forgotten",
                            lost.order_id, lost.client_order_id)  # fmt: skip
                self.forget(lost)
        self.notify()
        return events

    def _adopt(self, trade: Trade) -> None:
        """An order of this client id that the book does not know (after a restart)."""
        o = trade.order
        kind = m.order_type_of(o.orderType)
        if kind is None:  # not one this adapter sends: never guess what it is
            log.error("IB order %s (%s) has type %r, which this adapter does not map; not "
                      "adopted", o.orderId, o.orderRef, o.orderType)  # fmt: skip
            return
        self.add(TrackedOrder(
            client_order_id=o.orderRef, order_id=o.orderId, symbol=trade.contract.symbol,
            side=m.side_of(o.action), quantity=to_decimal(o.totalQuantity), order_type=kind,
            limit_price=m.limit_of(kind, o.lmtPrice), time_in_force=m.tif_of(o.tif),
            stop_price=m.stop_of(kind, o.auxPrice), parent_order_id=o.parentId or 0,
            oca_group=o.ocaGroup or "",
        ))  # fmt: skip

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, within_s: float) -> None:
        """Wait for the next change, or ``within_s`` seconds (no error: callers re-check)."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), within_s)
        except TimeoutError:
            pass


def apply_trade(tracked: TrackedOrder, trade: Trade) -> bool:
    """Bring a tracked order up to what ib_async says about its trade; True on any change."""
    ib_status = trade.orderStatus.status
    status = m.status_of(ib_status)
    reason = None
    last = trade.log[-1] if trade.log else None
    if ib_status in ("Cancelled", "ApiCancelled", "Inactive") and last and last.errorCode:
        # ib_async cancels a trade itself when IB answers its order with an error
        if tracked.modifying and last.errorCode != m.CANCELLED_CODE:
            # ...a refused modify included, though the order stays live as it was: the
            # refusal is the modify's answer (taken by the adapter's error handler)
            status = None
        else:
            reason = last.message
            if last.errorCode != m.CANCELLED_CODE and (
                tracked.status is OrderStatus.NEW or last.errorCode == 201
            ):
                status = OrderStatus.REJECTED
    if trade.orderStatus.permId:
        tracked.perm_id = trade.orderStatus.permId
    # fills before the status, so a "Cancelled" for an order that filled reads as filled
    done = trade.order.filledQuantity  # a completed order reports it here, not in a status
    filled = to_decimal(max(trade.orderStatus.filled or 0, m.price_or_none(done) or 0))
    changed = tracked.set_filled(filled, m.price_or_none(trade.orderStatus.avgFillPrice))
    changed |= status is not None and tracked.set_status(status, reason)
    quantity = m.price_or_none(trade.order.totalQuantity)
    if quantity is not None and m.order_type_of(trade.order.orderType) is tracked.order_type:
        # IB's word on the terms: a modify it confirmed, or a change typed into TWS
        t = tracked.order_type
        changed |= tracked.take_terms(
            quantity, m.limit_of(t, trade.order.lmtPrice), m.stop_of(t, trade.order.auxPrice)
        )
    return changed


def _same_order(tracked: TrackedOrder, trade: Trade) -> bool:
    o = trade.order
    if o.orderId > 0:
        return o.orderId == tracked.order_id
    return (trade.contract.symbol, m.side_of(o.action)) == (tracked.symbol, tracked.side) and (
        to_decimal(o.totalQuantity) == tracked.quantity
    )
