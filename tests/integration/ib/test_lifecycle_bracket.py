"""Stops and brackets at IB: STP / STP LMT on the wire and back, and ``submit_bracket``'s parent
and children (parentId, transmit, one OCA group) worked by the fake TWS: children held until
the entry fills, a fill of one exit cancelling the other."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.base import OrderChange, OrderEvent, OrderRequest
from brokers.errors import OrderRejected
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import MakeBroker, events_until_marker, is_order, next_event


def order(cid: str, side: str, kind: str, qty: int = 10, **prices: float) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side=side, quantity=qty,
                        order_type=kind, time_in_force="gtc", **prices)  # fmt: skip


def bracket(prefix: str, entry_limit: float = 199.0) -> tuple[OrderRequest, ...]:
    return (
        order(f"{prefix}-in", "buy", "limit", limit_price=entry_limit),
        order(f"{prefix}-sl", "sell", "stop", stop_price=190.0),
        order(f"{prefix}-tp", "sell", "limit", limit_price=210.0),
    )


async def test_stop_and_stop_limit_go_to_ib_as_stp_and_stp_lmt(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    broker = await make_broker()
    stp = await broker.submit(order("s-1", "sell", "stop", stop_price=190.5))
    stl = await broker.submit(order("s-2", "sell", "stop_limit", stop_price=190.5,
                                    limit_price=190.0))  # fmt: skip
    assert (stp.order_type, stp.stop_price, stp.limit_price) == ("stop", Decimal("190.5"), None)
    assert (stl.stop_price, stl.limit_price, stl.status) == (190.5, 190, "accepted")
    [(_, f1), (_, f2)] = tws.requests_of(3)
    assert (f1[18], f1[19], f1[20]) == ("STP", "", "190.5")  # type, lmtPrice, auxPrice
    assert (f2[18], f2[19], f2[20]) == ("STP LMT", "190.0", "190.5")
    # and read back as they are after a restart of the adapter
    await broker.close()
    await tws.wait_until(lambda: tws.clients == [])
    again = await make_broker()
    back = {o.client_order_id: o for o in await again.open_orders()}
    assert back["s-1"] == stp
    assert (back["s-2"].order_type, back["s-2"].stop_price, back["s-2"].limit_price) == (
        "stop_limit", 190.5, 190)  # fmt: skip


async def test_a_sell_stop_triggers_when_the_bid_reaches_it(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    await broker.submit(order("trig-1", "sell", "stop", stop_price=199.0))
    tws.set_quote("AAPL", 199.5, 199.6)  # above the stop: nothing
    assert not [e for e in await events_until_marker(tws, broker, events)
                if is_order("trig-1", "filled")(e)]  # fmt: skip
    tws.set_quote("AAPL", 198.9, 199.0)
    filled = await next_event(events, is_order("trig-1", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert filled.fill.price == Decimal("198.9")


async def test_a_bracket_is_parent_then_children_in_one_oca_group(
    tws: FakeTWS, broker: IBBroker
) -> None:
    entry, stop_loss, take_profit = bracket("b1")
    placed = await broker.submit_bracket(entry, stop_loss, take_profit)
    assert [o.client_order_id for o in placed] == ["b1-in", "b1-sl", "b1-tp"]
    assert [o.status for o in placed] == ["accepted"] * 3  # the exits rest, held by IB
    parent, sl, tp = (fields for _, fields in tws.requests_of(3))
    # orderRef, transmit, parentId, ocaGroup, ocaType
    assert (parent[26], parent[27], parent[28]) == ("b1-in", "0", "0")
    assert (sl[26], sl[27], sl[28]) == ("b1-sl", "0", placed[0].broker_order_id)
    assert (tp[26], tp[27], tp[28]) == ("b1-tp", "1", placed[0].broker_order_id)
    assert sl[22] == tp[22] == "oca-b1-in" and sl[47] == tp[47] == "2"
    assert parent[22] == "" and (sl[18], sl[20], tp[18], tp[19]) == ("STP", "190.0", "LMT", "210.0")
    held = tws.order_by_ref("b1-sl")
    assert held is not None and held.status == "PreSubmitted"  # until the entry fills
    # idempotent: the same bracket again places nothing
    assert await broker.submit_bracket(entry, stop_loss, take_profit) == placed
    assert len(tws.requests_of(3)) == 3
    # the stop was placed with transmit off; its modify goes with transmit on, or IB never
    # sees it
    moved = await broker.replace("b1-sl", OrderChange(stop_price=191.0))
    assert moved.stop_price == 191 and tws.requests_of(3)[-1][1][27] == "1"


async def test_the_stop_fires_after_the_entry_and_cancels_the_take_profit(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit_bracket(*bracket("b2"))
    tws.set_quote("AAPL", 210.5, 210.6)  # through the take profit, but it waits for the entry
    seen = await events_until_marker(tws, broker, events)
    assert [e.order.client_order_id for e in seen if isinstance(e, OrderEvent) and e.fill] == []
    tws.set_quote("AAPL", 198.9, 199.0)  # the entry fills
    await next_event(events, is_order("b2-in", "filled"))
    tws.set_quote("AAPL", 189.9, 190.0)  # through the stop
    stopped = await next_event(events, is_order("b2-sl", "filled"))
    assert isinstance(stopped, OrderEvent) and stopped.fill is not None
    assert stopped.fill.price == Decimal("189.9")
    await next_event(events, is_order("b2-tp", "canceled"))
    assert await broker.open_orders() == []


async def test_the_take_profit_fills_and_cancels_the_stop(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    await broker.submit_bracket(*bracket("b3", entry_limit=200.05))  # fills at once
    await next_event(events, is_order("b3-in", "filled"))
    tws.set_quote("AAPL", 210.0, 210.1)
    await next_event(events, is_order("b3-tp", "filled"))
    await next_event(events, is_order("b3-sl", "canceled"))


async def test_a_stop_leg_moves_and_the_exits_go_with_a_cancelled_entry(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    entry, stop_loss, _ = bracket("b4")
    await broker.submit_bracket(entry, stop_loss, None)  # OTO: entry and stop only
    [_, (_, sl)] = tws.requests_of(3)
    assert sl[27] == "1" and sl[22] == "oca-b4-in"  # the stop is the last: it transmits
    moved = await broker.replace("b4-sl", OrderChange(stop_price=192.0))
    assert moved.stop_price == 192 and moved.status == "accepted"
    at_ib = tws.order_by_ref("b4-sl")
    assert at_ib is not None and at_ib.aux_price == 192.0
    await broker.cancel("b4-in")
    await next_event(events, is_order("b4-in", "canceled"))
    await next_event(events, is_order("b4-sl", "canceled"))


@pytest.mark.parametrize(
    ("legs", "code", "field"),
    [
        ((None, None), "bracket_invalid", "at least one exit"),
        ((order("x-sl", "buy", "stop", stop_price=190.0), None), "bracket_invalid", "side"),
        (
            (order("x-sl", "sell", "stop", qty=5, stop_price=190.0), None),
            "bracket_invalid",
            "quantity",
        ),
        (
            (order("x-sl", "sell", "limit", limit_price=190.0), None),
            "bracket_invalid",
            "order_type",
        ),
        (
            (order("x-sl", "sell", "stop", stop_price=199.5), None),
            "protective_price_invalid",
            "stop_loss.stop_price",
        ),
        (
            (None, order("x-tp", "sell", "limit", limit_price=198.0)),
            "protective_price_invalid",
            "entry price",
        ),
    ],
)
async def test_a_malformed_bracket_reaches_nothing(
    tws: FakeTWS, broker: IBBroker, legs: tuple[OrderRequest | None, ...], code: str, field: str
) -> None:
    entry = order("x-in", "buy", "limit", limit_price=199.0)
    with pytest.raises(OrderRejected, match=field) as refused:
        await broker.submit_bracket(entry, legs[0], legs[1])
    assert refused.value.code == code
    assert tws.requests_of(3) == [] and await broker.get_order("x-in") is None


async def test_a_refused_entry_raises(tws: FakeTWS, broker: IBBroker) -> None:
    tws.state.reject_symbols["GME"] = (201, "Order rejected - reason:NOT ACCEPTED")
    entry = OrderRequest(client_order_id="g-in", symbol="GME", side="buy", quantity=1)
    stop_loss = OrderRequest(client_order_id="g-sl", symbol="GME", side="sell", quantity=1,
                             order_type="stop", stop_price=10.0)  # fmt: skip
    with pytest.raises(OrderRejected, match="NOT ACCEPTED"):
        await broker.submit_bracket(entry, stop_loss, None)
    # an entry refused on its own (the exits never sent) gets no exits attached later
    alone = OrderRequest(client_order_id="g2-in", symbol="GME", side="buy", quantity=1)
    with pytest.raises(OrderRejected):
        await broker.submit(alone)
    sent = len(tws.requests_of(3))
    leg = stop_loss.model_copy(update={"client_order_id": "g2-sl"})
    with pytest.raises(OrderRejected, match="NOT ACCEPTED"):
        await broker.submit_bracket(alone, leg, None)
    assert len(tws.requests_of(3)) == sent and await broker.get_order("g2-sl") is None


async def test_a_partial_take_profit_shrinks_the_stop_and_leaves_none_unprotected(
    tws: FakeTWS, broker: IBBroker
) -> None:
    # ocaType 2: a fill of one exit reduces the other by as much (type 1 would cancel the stop
    # and leave what the take profit did not sell unprotected).
    events = broker.events()
    await broker.submit_bracket(*bracket("b9", entry_limit=200.05))  # fills at once
    await next_event(events, is_order("b9-in", "filled"))
    take_profit = tws.order_by_ref("b9-tp")
    stop = tws.order_by_ref("b9-sl")
    assert take_profit is not None and stop is not None
    tws.fill(take_profit, 4, 210.0)
    await next_event(events, is_order("b9-tp", "partially_filled"))
    assert stop.is_open and stop.quantity == 6  # the 6 still held keep their stop
    tws.fill(take_profit, 6, 210.0)
    await next_event(events, is_order("b9-sl", "canceled"))
