"""The IB kill switch's two halves: list every open order, then confirm each cancel.

IB's ``reqGlobalCancel`` is one message (58) with no answer of its own: the only confirmation
is each order's Cancelled status. This client's orders report it through orderStatus. Orders
of other client ids and orders typed into TWS are only reported to their own client id (or to
client 0), so for them the confirmation is that ``reqAllOpenOrders`` stops listing them. They
are named ``perm:<permId>``, because an IB order id is only unique within one client id.
"""

from __future__ import annotations

import asyncio
import logging

from ib_async import IB
from ib_async import OrderStatus as IBStatus

from brokers.base import CancelReport, OrderStatus
from brokers.ib.book import OrderBook, TrackedOrder

log = logging.getLogger(__name__)


async def list_open_orders(ib: IB, book: OrderBook, within_s: float) -> dict[str, int]:
    """Open orders IB knows that are not in this adapter's book: ``perm:<permId>`` -> permId."""
    trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), within_s)
    foreign: dict[str, int] = {}
    for trade in trades:
        if trade.orderStatus.status in IBStatus.DoneStates:
            continue
        ours = book.by_id(trade.order.orderId)
        if ours is not None and trade.order.clientId == ib.client.clientId:
            continue  # tracked by its orderStatus events instead
        foreign[f"perm:{trade.order.permId}"] = trade.order.permId
    return foreign


async def confirm_cancels(
    ib: IB,
    book: OrderBook,
    own: dict[str, TrackedOrder],
    foreign: dict[str, int],
    *,
    within_s: float,
    poll_s: float,
    request_timeout: float,
) -> CancelReport:
    """Wait until each order is confirmed cancelled, or ``within_s`` passes; report per order."""
    own, foreign = dict(own), dict(foreign)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    next_poll = loop.time() + poll_s
    cancelled: list[str] = []
    failed: dict[str, str] = {}
    while True:
        for broker_id, order in list(own.items()):
            if order.status is OrderStatus.CANCELED:
                cancelled.append(broker_id)
                del own[broker_id]
            elif not order.status.is_open:  # filled or rejected meanwhile: it was not cancelled
                failed[broker_id] = f"{order.status.value} before the cancel took effect"
                del own[broker_id]
        if foreign and loop.time() >= next_poll:
            try:
                still_open = await list_open_orders(ib, book, min(request_timeout, poll_s * 4))
            except TimeoutError:
                log.warning("reqAllOpenOrders timed out while confirming the global cancel")
            else:
                for broker_id in [b for b in foreign if b not in still_open]:
                    cancelled.append(broker_id)
                    del foreign[broker_id]
            next_poll = loop.time() + poll_s
        now = loop.time()
        if not (own or foreign) or now >= deadline:
            break
        wait = deadline - now
        if foreign:
            wait = min(wait, max(next_poll - now, 0.0))
        await book.wait_change(wait)
    for broker_id, order in own.items():
        failed[broker_id] = (
            f"IB did not confirm the cancel within {within_s}s (status {order.status.value})"
        )
    for broker_id in foreign:
        failed[broker_id] = f"IB still lists the order as open after {within_s}s"
    return CancelReport(cancelled=cancelled, failed=failed)
