"""Cancel and replace on the simulated broker: a resting order changes in place (one live order,
same ids), a refusal leaves it exactly as it was, and the fire drills slow these calls too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import OrderChange, OrderEvent, OrderRequest, OrderStatus
from brokers.errors import NotSent, OrderNotFound, OrderRejected
from brokers.simulated import Faults, SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)}


def order(coid: str, qty: Any = 10, side: str = "buy", **kwargs: Any) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty, **kwargs)


def limit(coid: str, price: Any, qty: Any = 10, side: str = "buy") -> OrderRequest:
    return order(coid, qty, side, order_type="limit", limit_price=price, time_in_force="gtc")


async def order_events(sim: SimulatedBroker) -> list[OrderEvent]:
    """Every order event published so far (quotes skipped)."""
    seen: list[OrderEvent] = []
    stream = sim.events()
    while True:
        try:
            event = await asyncio.wait_for(anext(stream), 0.02)
        except TimeoutError:
            return seen
        if isinstance(event, OrderEvent):
            seen.append(event)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600)
    await broker.connect()
    yield broker
    await broker.close()


# --- cancel --------------------------------------------------------------------------------------


async def test_a_cancel_ends_the_resting_order_and_says_so(sim: SimulatedBroker) -> None:
    await sim.submit(limit("rest", 190))
    await order_events(sim)
    await sim.cancel("rest")
    [event] = await order_events(sim)
    assert event.order.status is OrderStatus.CANCELED
    assert event.order.client_order_id == "rest"
    assert event.fill is None
    assert await sim.open_orders() == []


async def test_a_cancel_of_an_unknown_id_is_not_found(sim: SimulatedBroker) -> None:
    with pytest.raises(OrderNotFound):
        await sim.cancel("nobody")


@pytest.mark.parametrize("how", ["filled", "canceled"])
async def test_a_cancel_of_a_final_order_is_refused_and_changes_nothing(
    sim: SimulatedBroker, how: str
) -> None:
    if how == "filled":
        await sim.submit(order("done"))
    else:
        await sim.submit(limit("done", 190))
        await sim.cancel("done")
    before = await sim.get_order("done")
    account = await sim.account()
    await order_events(sim)
    with pytest.raises(OrderRejected) as info:
        await sim.cancel("done")
    assert info.value.code == "order_not_open"
    assert await sim.get_order("done") == before
    assert await sim.account() == account
    assert await order_events(sim) == []


# --- replace -------------------------------------------------------------------------------------


async def test_a_replace_changes_the_order_in_place(sim: SimulatedBroker) -> None:
    placed = await sim.submit(limit("rest", 190))
    await order_events(sim)
    replaced = await sim.replace("rest", OrderChange(quantity=12, limit_price=191))
    assert replaced.client_order_id == "rest"
    assert replaced.broker_order_id == placed.broker_order_id
    assert (replaced.quantity, replaced.limit_price) == (Decimal(12), Decimal(191))
    assert replaced.status is OrderStatus.ACCEPTED
    assert await sim.open_orders() == [replaced]  # one live order, never two
    assert await sim.get_order("rest") == replaced
    [event] = await order_events(sim)
    assert (event.order, event.reason, event.fill) == (replaced, "replaced", None)


async def test_a_replace_of_an_unknown_id_is_not_found(sim: SimulatedBroker) -> None:
    with pytest.raises(OrderNotFound):
        await sim.replace("nobody", OrderChange(quantity=1))


async def _refused(sim: SimulatedBroker, coid: str, change: OrderChange, code: str) -> None:
    before = await sim.get_order(coid)
    account = await sim.account()
    await order_events(sim)
    with pytest.raises(OrderRejected) as info:
        await sim.replace(coid, change)
    assert info.value.code == code, info.value
    assert await sim.get_order(coid) == before  # untouched
    assert await sim.account() == account
    assert await order_events(sim) == []


async def test_a_replace_of_a_final_order_is_refused(sim: SimulatedBroker) -> None:
    await sim.submit(limit("done", 201))  # crosses the ask: filled at once
    await _refused(sim, "done", OrderChange(limit_price=202), "order_not_open")
    await sim.submit(limit("gone", 190))
    await sim.cancel("gone")
    await _refused(sim, "gone", OrderChange(quantity=3), "order_not_open")


async def test_a_replace_of_a_market_order_is_refused() -> None:
    # A market order rests only while it fills piece by piece.
    sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, fill_quantity_per_tick=2)
    await sim.connect()
    try:
        assert (await sim.submit(order("mkt"))).status is OrderStatus.PARTIALLY_FILLED
        await _refused(sim, "mkt", OrderChange(quantity=20), "not_replaceable")
    finally:
        await sim.close()


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("limit", OrderChange(stop_price=195), "stop_price"),
        ("stop", OrderChange(limit_price=195), "limit_price"),
    ],
)
async def test_a_price_the_order_type_lacks_is_refused_naming_it(
    sim: SimulatedBroker, kind: str, change: OrderChange, field: str
) -> None:
    if kind == "limit":
        await sim.submit(limit("o", 190))
    else:
        await sim.submit(order("o", side="sell", order_type="stop", stop_price=190))
    with pytest.raises(OrderRejected, match=field):
        await sim.replace("o", change)
    await _refused(sim, "o", change, "field_not_applicable")


async def test_a_replace_that_makes_a_limit_marketable_fills_it_at_once(
    sim: SimulatedBroker,
) -> None:
    await sim.submit(limit("rest", 190))
    await order_events(sim)
    filled = await sim.replace("rest", OrderChange(limit_price=200.10))
    assert filled.status is OrderStatus.FILLED
    assert filled.avg_fill_price == Decimal("200.05")  # the ask: the limit or better
    replaced, fill = await order_events(sim)
    assert replaced.reason == "replaced"
    assert replaced.order.limit_price == Decimal("200.10")
    assert replaced.order.status is OrderStatus.ACCEPTED
    assert fill.fill is not None and fill.fill.quantity == 10
    assert [p.qty for p in await sim.positions()] == [Decimal(10)]


async def test_buying_power_is_checked_for_the_grown_part_only(sim: SimulatedBroker) -> None:
    await sim.submit(limit("big", 200, qty=400))  # reserves 80,000 of 100,000
    assert (await sim.account()).buying_power == Decimal(20000)
    # +100 at 200 is exactly what is left: allowed (the whole order, 100,000, would not be).
    grown = await sim.replace("big", OrderChange(quantity=500))
    assert grown.quantity == 500
    await _refused(sim, "big", OrderChange(quantity=501), "buying_power")
    # Shrinking always passes, even with no buying power left.
    assert (await sim.replace("big", OrderChange(quantity=100))).quantity == 100


async def test_a_sell_replace_needs_no_buying_power(sim: SimulatedBroker) -> None:
    await sim.submit(limit("all-in", 200, qty=500))
    await sim.submit(limit("sell", 250, qty=1, side="sell"))
    assert (await sim.replace("sell", OrderChange(quantity=1000))).quantity == 1000


async def test_the_latency_drill_slows_replace_and_cancel(sim: SimulatedBroker) -> None:
    await sim.submit(limit("rest", 190))
    sim.set_faults(Faults(latency_ms=150))
    started = time.monotonic()
    await sim.replace("rest", OrderChange(limit_price=191))
    await sim.cancel("rest")
    assert time.monotonic() - started >= 0.3


async def test_replace_and_cancel_while_disconnected_are_not_sent(sim: SimulatedBroker) -> None:
    await sim.submit(limit("rest", 190))
    await sim.close()
    with pytest.raises(NotSent):
        await sim.replace("rest", OrderChange(limit_price=191))
    with pytest.raises(NotSent):
        await sim.cancel("rest")
    await sim.connect()
    assert (await sim.get_order("rest")) is not None
    assert (await sim.open_orders())[0].limit_price == 190
