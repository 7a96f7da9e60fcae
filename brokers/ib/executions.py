"""The executions of orders this adapter placed, read from IB again (``IBBroker.executions``).

After a restart of the gateway process the book starts empty, and IB reports an order that
completed before it without its order id or client id, so it is not adopted and its executions
are not re-emitted at connect. The gateway asks for them by client_order_id instead: IB's
``reqExecutions`` answers the executions it still holds (the current day's by default), each
with the order's ``orderRef`` (our client_order_id) and IB's ``execId``, the very ``fill_id`` a
live execution carried. An order IB no longer holds executions for is simply absent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ib_async import Fill as IBFill

from brokers.base import Fill, to_decimal
from brokers.ib import mapping as m


def fills_of(
    ib_fills: Iterable[IBFill], client_order_ids: Collection[str], client_id: int
) -> list[Fill]:
    """The executions of these orders placed by this client id, as live fills report them."""
    wanted = set(client_order_ids)
    found: list[Fill] = []
    for ib_fill in ib_fills:
        ex = ib_fill.execution
        if ex.orderRef not in wanted or ex.clientId != client_id:
            continue  # not ours: another client id, or typed into TWS
        found.append(
            Fill(
                client_order_id=ex.orderRef,
                broker_order_id=str(ex.orderId),
                symbol=ib_fill.contract.symbol,
                side=m.side_of(ex.side),
                quantity=to_decimal(ex.shares),
                price=to_decimal(ex.price),
                ts=ex.time,
                fill_id=ex.execId,
            )
        )
    return sorted(found, key=lambda fill: fill.ts)
