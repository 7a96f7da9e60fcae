"""Trade updates of orders a strategy manages, through the websocket fake: a replace is not a
cancel, the replacing order speaks the gateway's client_order_id, fills are deltas reported
once, a fill can race a cancel, and fills executed while the stream was down arrive after the
reconnect exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from alpaca_helpers import NO_QUERY, make_vcr, played

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import BrokerEvent, ConnectionEvent, OrderChange, OrderEvent, OrderStatus
from tests.fakes.alpaca_streams import FakeTradingStream, order_json


def uid(n: int) -> str:
    return f"5b1f3a2c-7d4e-4f60-9a8b-0c1d2e3f{n:04x}"


SENTINEL = "sig-sentinel"


async def order_events(events: AsyncIterator[BrokerEvent], within_s: float = 10.0) -> OrderEvent:
    async with asyncio.timeout(within_s):
        async for event in events:
            if isinstance(event, OrderEvent):
                return event
    raise AssertionError("events ended")


async def until_sentinel(
    events: AsyncIterator[BrokerEvent], fake: FakeTradingStream
) -> list[OrderEvent]:
    """Every order event before a sentinel update sent now: proves nothing else is coming."""
    await fake.send_update("new", order_json(uid(0xFFF), SENTINEL))
    seen = []
    while (event := await order_events(events)).order.client_order_id != SENTINEL:
        seen.append(event)
    return seen


def limit(order_id: str, coid: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("limit_price", "189.5")
    return order_json(order_id, coid, order_type="limit", **fields)


async def test_a_replace_is_not_a_cancel_and_the_new_order_keeps_the_gateways_id(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    a, b = uid(0xA1), uid(0xA2)
    events = streaming_broker.events()
    await streaming_broker.connect()
    await trading_fake.send_update("new", limit(a, "sig-rest-1"))
    assert (await order_events(events)).order.status is OrderStatus.NEW
    with make_vcr().use_cassette("lifecycle_replace.yaml"):
        await streaming_broker.replace("sig-rest-1", OrderChange(limit_price="189.8"))

    await trading_fake.send_update(
        "pending_replace", limit(a, "sig-rest-1", status="pending_replace")
    )
    pending = await order_events(events)
    assert pending.reason == "pending_replace" and pending.order.status is OrderStatus.NEW

    await trading_fake.send_update(
        "replaced", limit(a, "sig-rest-1", status="replaced", replaced_by=b)
    )
    replaced = await order_events(events)
    assert replaced.reason == "replaced" and replaced.order.status is not OrderStatus.CANCELED
    assert replaced.order.client_order_id == "sig-rest-1" and replaced.order.broker_order_id == b
    assert replaced.order.limit_price == Decimal("189.8")

    alpacas_id = "e2d4b7a0-3c1f-4b8e-9d6a-5f0e1c2b00a2"
    replacing = {"limit_price": "189.8", "replaces": a}
    await trading_fake.send_update("new", limit(b, alpacas_id, **replacing))
    assert (await order_events(events)).order.client_order_id == "sig-rest-1"

    partial = limit(b, alpacas_id, status="partially_filled", filled_qty="4", **replacing)
    partial["filled_avg_price"] = "189.8"
    for _ in range(2):  # the same update twice: reported once
        await trading_fake.send_update(
            "partial_fill", partial, qty="4", price="189.8", execution_id="x-1"
        )
    done = limit(b, alpacas_id, status="filled", filled_qty="10", **replacing)
    done["filled_avg_price"] = "189.77"
    await trading_fake.send_update("fill", done, qty="6", price="189.75", execution_id="x-2")

    fills = await until_sentinel(events, trading_fake)
    assert [(e.fill.quantity, e.fill.fill_id) for e in fills if e.fill] == [
        (Decimal(4), "x-1"),
        (Decimal(6), "x-2"),
    ]
    assert all(e.order.client_order_id == "sig-rest-1" for e in fills)
    assert all(e.fill is not None and e.fill.client_order_id == "sig-rest-1" for e in fills)
    assert fills[-1].order.status is OrderStatus.FILLED and fills[-1].order.broker_order_id == b


async def test_fills_can_race_a_cancel_and_the_truth_wins(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    k, j = uid(0x301), uid(0x302)
    await trading_fake.send_update("pending_cancel", limit(k, "sig-k", status="pending_cancel"))
    whole = limit(k, "sig-k", status="filled", filled_qty="10")
    whole["filled_avg_price"] = "189.5"
    await trading_fake.send_update("fill", whole, qty="10", price="189.5", execution_id="k-1")

    await trading_fake.send_update("pending_cancel", limit(j, "sig-j", status="pending_cancel"))
    part = limit(j, "sig-j", status="pending_cancel", filled_qty="3")
    part["filled_avg_price"] = "189.4"
    await trading_fake.send_update("partial_fill", part, qty="3", price="189.4")
    gone = {**part, "status": "canceled"}
    await trading_fake.send_update("canceled", gone)

    seen = await until_sentinel(events, trading_fake)
    statuses = [(e.order.client_order_id, e.order.status) for e in seen]
    assert statuses == [
        ("sig-k", OrderStatus.PENDING_CANCEL),
        ("sig-k", OrderStatus.FILLED),
        ("sig-j", OrderStatus.PENDING_CANCEL),
        ("sig-j", OrderStatus.PENDING_CANCEL),
        ("sig-j", OrderStatus.CANCELED),
    ]
    fills = [e.fill for e in seen if e.fill is not None]
    assert [(f.client_order_id, f.quantity) for f in fills] == [
        ("sig-k", Decimal(10)),
        ("sig-j", Decimal(3)),
    ]
    assert fills[1].fill_id == f"{j}:3"  # no execution_id: order id + cumulative quantity
    assert seen[-1].order.filled_quantity == 3


async def test_after_a_restart_a_replacing_order_is_traced_back_to_the_gateways_id(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    with make_vcr().use_cassette("lifecycle_stream_restart.yaml") as cassette:
        await trading_fake.send_update(
            "new", limit(uid(0x122), "e2d4b7a0-3c1f-4b8e-9d6a-5f0e1c2b0122", replaces=uid(0x121))
        )
        event = await order_events(events)
    assert played(cassette, "GET", f"/v2/orders/{uid(0x121)}") == 1
    assert event.order.client_order_id == "sig-rest-8"
    assert event.order.broker_order_id == uid(0x122)


async def test_fills_missed_while_the_stream_was_down_arrive_once_after_the_reconnect(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    m = uid(0x111)
    events = streaming_broker.events()
    await streaming_broker.connect()
    four = limit(m, "sig-rest-6", status="partially_filled", filled_qty="4")
    four["filled_avg_price"] = "189.5"
    await trading_fake.send_update("partial_fill", four, qty="4", price="189.5", execution_id="e1")
    first = await order_events(events)
    assert first.fill is not None and first.fill.quantity == 4

    with make_vcr(NO_QUERY).use_cassette("lifecycle_missed_fills.yaml") as cassette:
        await trading_fake.drop()  # meanwhile the order fills 3 @ 189.45 and 3 @ 189.4
        recovered: list[OrderEvent] = []
        states = []
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, ConnectionEvent):
                    states.append(event.connected)
                    if event.connected:
                        break
                elif isinstance(event, OrderEvent):
                    recovered.append(event)
    assert states == [False, True]
    asked = cassette.requests[0].uri
    assert "/v2/account/activities/FILL?" in asked and "direction=asc" in asked
    assert "after=" in asked and played(cassette) == 2
    assert [(e.fill.quantity, e.fill.price, e.fill.fill_id) for e in recovered if e.fill] == [
        (Decimal(3), Decimal("189.45"), f"{m}:7"),
        (Decimal(3), Decimal("189.4"), f"{m}:10"),
    ]  # the 4 the stream reported before the drop are not reported again
    assert recovered[-1].order.status is OrderStatus.FILLED
    assert recovered[-1].order.avg_fill_price == Decimal("189.455")

    # Alpaca's stream may still deliver the last fill itself: it is not counted twice.
    done = limit(m, "sig-rest-6", status="filled", filled_qty="10")
    done["filled_avg_price"] = "189.455"
    await trading_fake.send_update("fill", done, qty="3", price="189.4", execution_id="e3")
    assert await until_sentinel(events, trading_fake) == []


async def test_a_legs_updates_speak_the_gateways_leg_id(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    from brokers.base import OrderRequest

    events = streaming_broker.events()
    await streaming_broker.connect()

    def req(coid: str, **fields: Any) -> OrderRequest:
        return OrderRequest(client_order_id=coid, symbol="AAPL", time_in_force="gtc", **fields)

    with make_vcr().use_cassette("lifecycle_bracket.yaml"):
        await streaming_broker.submit_bracket(
            req("sig-br-1", side="buy", quantity=10, order_type="limit", limit_price="189.5"),
            req("sig-br-1-sl", side="sell", quantity=10, order_type="stop", stop_price=180),
            req("sig-br-1-tp", side="sell", quantity=10, order_type="limit", limit_price=200),
        )
    stop = order_json(
        uid(0x103), "e2d4b7a0-3c1f-4b8e-9d6a-5f0e1c2b0103", side="sell", order_type="stop"
    )
    stop.update(stop_price="180", order_class="bracket", time_in_force="gtc")
    await trading_fake.send_update("new", stop)
    hit = {**stop, "status": "filled", "filled_qty": "10", "filled_avg_price": "179.9"}
    await trading_fake.send_update("fill", hit, qty="10", price="179.9", execution_id="s-1")
    seen = await until_sentinel(events, trading_fake)
    assert [e.order.client_order_id for e in seen] == ["sig-br-1-sl", "sig-br-1-sl"]
    fill = seen[-1].fill
    assert fill is not None and fill.client_order_id == "sig-br-1-sl" and fill.quantity == 10
