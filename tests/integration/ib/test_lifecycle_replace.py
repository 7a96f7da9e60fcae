"""Replace on IB: placeOrder on the same orderId, confirmed by the fake TWS's openOrder; a refused
modify leaves the order as it was; events keep coming after a modify."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from brokers.base import OrderChange, OrderEvent, OrderRequest
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import MakeBroker, events_until_marker, is_order, next_event


def limit(cid: str, price: float, qty: int = 10, side: str = "buy") -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side=side, quantity=qty,
                        order_type="limit", limit_price=price)  # fmt: skip


def stop(cid: str, stop_price: float, limit_price: float | None = None) -> OrderRequest:
    kind = "stop" if limit_price is None else "stop_limit"
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="sell", quantity=10,
                        order_type=kind, stop_price=stop_price,
                        limit_price=limit_price)  # fmt: skip


def with_terms(cid: str, qty: int, price: str) -> object:
    return lambda e: (
        isinstance(e, OrderEvent)
        and e.order.client_order_id == cid
        and (e.order.quantity, e.order.limit_price) == (qty, Decimal(price))
    )


async def test_replace_moves_the_order_in_place(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    placed = await broker.submit(limit("mv-1", 190.0))
    moved = await broker.replace("mv-1", OrderChange(limit_price=191.5, quantity=12))
    assert (moved.client_order_id, moved.broker_order_id) == ("mv-1", placed.broker_order_id)
    assert (moved.quantity, moved.limit_price, moved.status) == (12, Decimal("191.5"), "accepted")
    # one placeOrder more, on the same order id; IB holds one order for it, with the new terms
    [_, (_, modify)] = tws.requests_of(3)
    assert modify[1] == placed.broker_order_id and (modify[17], modify[19]) == ("12.0", "191.5")
    assert modify[27] == "1"  # transmitted
    at_ib = [o for o in tws.state.orders.values() if o.order_ref == "mv-1"]
    assert [(o.quantity, o.limit_price, o.is_open) for o in at_ib] == [(12, 191.5, True)]
    await next_event(events, with_terms("mv-1", 12, "191.5"))  # the change is an event too
    assert await broker.get_order("mv-1") == moved
    assert [o.limit_price for o in await broker.open_orders()] == [Decimal("191.5")]


async def test_after_a_modify_fills_keep_coming(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    await broker.submit(limit("mv-2", 190.0))
    placed = tws.order_by_ref("mv-2")
    assert placed is not None
    tws.fill(placed, 4, 190.0)  # partly filled, then moved
    await next_event(events, is_order("mv-2", "partially_filled"))
    moved = await broker.replace("mv-2", OrderChange(limit_price=200.05))  # marketable now
    assert moved.filled_quantity in (4, 10)
    filled = await next_event(events, is_order("mv-2", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert (filled.fill.quantity, filled.fill.price) == (6, Decimal("200.05"))
    assert filled.order.filled_quantity == 10 and filled.order.limit_price == Decimal("200.05")


async def test_a_stop_moves_by_its_aux_price(tws: FakeTWS, broker: IBBroker) -> None:
    await broker.submit(stop("st-1", 190.0))
    moved = await broker.replace("st-1", OrderChange(stop_price=195.0))
    assert (moved.order_type, moved.stop_price, moved.limit_price) == ("stop", 195, None)
    at_ib = tws.order_by_ref("st-1")
    assert at_ib is not None and (at_ib.order_type, at_ib.aux_price) == ("STP", 195.0)
    await broker.submit(stop("sl-1", 190.0, 189.0))
    both = await broker.replace("sl-1", OrderChange(stop_price=192.0, limit_price=191.0))
    assert (both.order_type, both.stop_price, both.limit_price) == ("stop_limit", 192, 191)


@pytest.mark.parametrize("code", [201, 103, 10147])
async def test_a_refused_modify_leaves_the_order_as_it_was(
    tws: FakeTWS, broker: IBBroker, code: int
) -> None:
    events = broker.events()
    before = await broker.submit(limit("no-1", 190.0))
    tws.state.reject_modify["no-1"] = (code, "Order rejected - reason: modify not accepted")
    with pytest.raises(OrderRejected, match="modify not accepted") as refused:
        await broker.replace("no-1", OrderChange(limit_price=195.0))
    assert refused.value.code == str(code)
    assert await broker.get_order("no-1") == before  # status and terms: the original
    assert [o.client_order_id for o in await broker.open_orders()] == ["no-1"]
    at_ib = tws.order_by_ref("no-1")
    assert at_ib is not None and at_ib.limit_price == 190.0 and at_ib.is_open
    # no event said it was cancelled or rejected
    seen = await events_until_marker(tws, broker, events)
    assert not [e for e in seen if isinstance(e, OrderEvent) and not e.order.is_open]
    # and it can still be moved once IB accepts (ib_async's own state was put back)
    del tws.state.reject_modify["no-1"]
    moved = await broker.replace("no-1", OrderChange(limit_price=195.0))
    assert moved.limit_price == Decimal("195") and moved.status == "accepted"


async def test_replace_of_an_unknown_or_final_order(tws: FakeTWS, broker: IBBroker) -> None:
    with pytest.raises(OrderNotFound):
        await broker.replace("never", OrderChange(limit_price=1))
    events = broker.events()
    await broker.submit(limit("done-1", 200.05))  # marketable: fills at once
    await next_event(events, is_order("done-1", "filled"))
    with pytest.raises(OrderRejected) as final:
        await broker.replace("done-1", OrderChange(limit_price=199))
    assert final.value.code == "order_not_open"
    assert len(tws.requests_of(3)) == 1  # nothing sent


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (OrderChange(stop_price=180), "stop_price"),  # a limit order has no stop
        (OrderChange(quantity=4), "quantity"),  # not above the 4 filled
    ],
)
async def test_a_change_that_does_not_fit_is_refused_before_ib(
    tws: FakeTWS, broker: IBBroker, change: OrderChange, field: str
) -> None:
    events = broker.events()
    await broker.submit(limit("bad-1", 190.0))
    placed = tws.order_by_ref("bad-1")
    assert placed is not None
    tws.fill(placed, 4, 190.0)
    await next_event(events, is_order("bad-1", "partially_filled"))
    with pytest.raises(OrderRejected, match=field) as refused:
        await broker.replace("bad-1", change)
    assert refused.value.code == "change_invalid"
    assert len(tws.requests_of(3)) == 1


async def test_a_modify_without_an_answer_may_have_landed(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    broker = await make_broker(ack_timeout=0.3)
    before = await broker.submit(limit("lost-1", 190.0))
    tws.state.swallow_orders = True
    with pytest.raises(BrokerUnavailable, match="may have landed"):
        await broker.replace("lost-1", OrderChange(limit_price=191))
    assert await broker.get_order("lost-1") == before  # nothing confirmed, nothing assumed


async def test_a_modify_answered_by_a_cancel_reports_the_cancel(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(limit("gone-1", 190.0))
    tws.state.reject_modify["gone-1"] = (202, "Order Canceled - reason:")
    with pytest.raises(OrderRejected) as refused:
        await broker.replace("gone-1", OrderChange(limit_price=191))
    assert refused.value.code == "order_not_open"  # the truth: IB cancelled it
    await next_event(events, is_order("gone-1", "canceled"))


async def test_a_second_replace_waits_for_the_first_answer(tws: FakeTWS, broker: IBBroker) -> None:
    await broker.submit(limit("two-1", 190.0))
    first = asyncio.ensure_future(broker.replace("two-1", OrderChange(limit_price=191)))
    await asyncio.sleep(0)  # the first is sent and waits for IB
    with pytest.raises(OrderRejected) as refused:
        await broker.replace("two-1", OrderChange(limit_price=192))
    assert refused.value.code == "replace_in_flight"
    assert (await first).limit_price == 191
