"""Cancel on IB, and the truth when a cancel races a fill: IB may say "Cancelled" for an order
whose executions show it filled; the executions win."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.base import Fill, OrderEvent, OrderRequest
from brokers.errors import OrderNotFound, OrderRejected
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import events_until_marker, is_order, next_event


def resting(cid: str, qty: int = 10) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="buy", quantity=qty,
                        order_type="limit", limit_price=190.0)  # fmt: skip


async def test_cancel_sends_cancel_order_for_the_order_id(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    placed = await broker.submit(resting("cx-1"))
    await broker.cancel("cx-1")
    await tws.wait_until(lambda: len(tws.requests_of(4)) == 1)
    [(client_id, fields)] = tws.requests_of(4)
    assert (client_id, fields[2]) == (17, placed.broker_order_id)
    await next_event(events, is_order("cx-1", "canceled"))
    with pytest.raises(OrderRejected) as final:
        await broker.cancel("cx-1")
    assert final.value.code == "order_not_open"
    with pytest.raises(OrderNotFound):
        await broker.cancel("cx-unknown")
    assert len(tws.requests_of(4)) == 1


@pytest.mark.parametrize("status_first", [False, True], ids=["exec-then-cancelled",
                                                              "cancelled-then-exec"])  # fmt: skip
async def test_a_cancelled_report_for_an_order_that_filled_is_a_fill(
    tws: FakeTWS, broker: IBBroker, status_first: bool
) -> None:
    tws.state.status_first = status_first
    events = broker.events()
    await broker.submit(resting("race-1"))
    placed = tws.order_by_ref("race-1")
    assert placed is not None
    tws.fill(placed, 10, 190.0, reported_status="Cancelled")  # IB: "Cancelled", 0 filled
    seen = await events_until_marker(tws, broker, events)
    mine = [e for e in seen if isinstance(e, OrderEvent) and e.order.client_order_id == "race-1"]
    fills = [e.fill for e in mine if e.fill is not None]
    assert [(f.quantity, f.price) for f in fills] == [(10, Decimal("190"))]
    assert mine[-1].order.status == "filled"  # the last word is the truth
    order = await broker.get_order("race-1")
    assert order is not None and (order.status, order.filled_quantity) == ("filled", 10)


async def test_a_partly_filled_order_cancelled_stays_cancelled_with_its_fills(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(resting("part-1"))
    placed = tws.order_by_ref("part-1")
    assert placed is not None
    tws.fill(placed, 3, 190.0)
    fill_event = await next_event(
        events, lambda e: isinstance(e, OrderEvent) and e.fill is not None
    )
    assert isinstance(fill_event, OrderEvent) and isinstance(fill_event.fill, Fill)
    await broker.cancel("part-1")
    done = await next_event(events, is_order("part-1", "canceled"))
    assert isinstance(done, OrderEvent) and done.order.filled_quantity == 3
