"""Brackets on the simulated broker: the legs are held until the entry fills, then work for what
filled, one cancelling the other; an entry that ends unfilled takes its held legs with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderChange, OrderEvent, OrderRequest, OrderStatus
from brokers.simulated import SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05)}
NEW, ACCEPTED, FILLED, CANCELED = (
    OrderStatus.NEW,
    OrderStatus.ACCEPTED,
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
)


def req(coid: str, side: str = "buy", qty: Any = 10, **kwargs: Any) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid, symbol="AAPL", side=side, quantity=qty, time_in_force="gtc", **kwargs
    )


def legs(qty: Any = 10, side: str = "sell") -> tuple[OrderRequest, OrderRequest]:
    return (
        req("sl", side, qty, order_type="stop", stop_price=195),
        req("tp", side, qty, order_type="limit", limit_price=210),
    )


async def state(sim: SimulatedBroker, coid: str) -> tuple[OrderStatus, Decimal, Decimal]:
    got = await sim.get_order(coid)
    assert got is not None
    return got.status, got.quantity, got.filled_quantity


def drain(sim: SimulatedBroker) -> list[OrderEvent]:
    queue = sim._events
    events = [queue.get_nowait() for _ in range(queue.qsize())]
    return [e for e in events if isinstance(e, OrderEvent)]


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600)
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture
async def slow() -> AsyncIterator[SimulatedBroker]:
    """Fills 4 a quote at most: an entry of 10 fills 4, 4, 2."""
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600, fill_quantity_per_tick=4)
    await broker.connect()
    yield broker
    await broker.close()


async def test_a_filled_buy_has_its_stop_and_take_profit_working(sim: SimulatedBroker) -> None:
    placed = await sim.submit_bracket(req("entry"), *legs())
    assert [o.client_order_id for o in placed] == ["entry", "sl", "tp"]
    assert [o.status for o in placed] == [FILLED, ACCEPTED, ACCEPTED]
    assert [o.quantity for o in placed] == [10, 10, 10]
    assert sim.oco_group("sl") == ["sl", "tp"]
    assert {o.client_order_id for o in await sim.open_orders()} == {"sl", "tp"}
    reasons = [(e.order.client_order_id, e.order.status, e.reason) for e in drain(sim)]
    assert ("sl", NEW, "bracket: held until entry entry fills") in reasons
    assert ("sl", ACCEPTED, "bracket: entry entry filled 10") in reasons
    assert ("tp", ACCEPTED, "bracket: entry entry filled 10") in reasons


async def test_only_a_stop_makes_an_oto(sim: SimulatedBroker) -> None:
    stop, _ = legs()
    placed = await sim.submit_bracket(req("entry"), stop, None)
    assert [(o.client_order_id, o.status) for o in placed] == [("entry", FILLED), ("sl", ACCEPTED)]
    assert sim.oco_group("sl") == []


async def test_the_market_through_the_stop_closes_and_cancels_the_take_profit(
    sim: SimulatedBroker,
) -> None:
    await sim.submit_bracket(req("entry"), *legs())
    drain(sim)
    _, changed = sim.set_quote("AAPL", 194.9, 195.0)
    assert {(o.client_order_id, o.status) for o in changed} == {("sl", FILLED), ("tp", CANCELED)}
    assert await sim.positions() == []
    assert await sim.open_orders() == []
    tp_events = [e for e in drain(sim) if e.order.client_order_id == "tp"]
    assert tp_events[-1].reason is not None and tp_events[-1].reason.startswith("oco: sl filled")
    sim.set_quote("AAPL", 215, 215.1)  # through the old take profit: nothing fires
    assert await sim.positions() == []


async def test_the_market_through_the_take_profit_cancels_the_stop(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry"), *legs())
    _, changed = sim.set_quote("AAPL", 210.0, 210.1)
    assert {(o.client_order_id, o.status) for o in changed} == {("tp", FILLED), ("sl", CANCELED)}
    assert await sim.positions() == []
    sim.set_quote("AAPL", 190, 190.1)
    assert await sim.positions() == []


async def test_held_legs_never_fill_before_the_entry(sim: SimulatedBroker) -> None:
    placed = await sim.submit_bracket(req("entry", order_type="limit", limit_price=199), *legs())
    assert [o.status for o in placed] == [ACCEPTED, NEW, NEW]
    sim.set_quote("AAPL", 210.5, 211)  # through the take profit, the entry not filled
    sim.set_quote("AAPL", 199.5, 199.6)
    assert await state(sim, "tp") == (NEW, 10, 0)
    assert await state(sim, "sl") == (NEW, 10, 0)
    assert await sim.positions() == []


async def test_partial_entry_fills_grow_the_legs(slow: SimulatedBroker) -> None:
    placed = await slow.submit_bracket(req("entry"), *legs())
    assert [(o.status, o.filled_quantity) for o in placed] == [
        (OrderStatus.PARTIALLY_FILLED, 4),
        (ACCEPTED, 0),
        (ACCEPTED, 0),
    ]
    assert [o.quantity for o in placed[1:]] == [4, 4]
    slow.set_quote("AAPL", 199.95, 200.05)
    assert (await state(slow, "sl"))[1] == (await state(slow, "tp"))[1] == 8
    slow.set_quote("AAPL", 199.95, 200.05)
    assert await state(slow, "entry") == (FILLED, 10, 10)
    assert await state(slow, "sl") == (ACCEPTED, 10, 0)
    assert await state(slow, "tp") == (ACCEPTED, 10, 0)


async def test_a_partial_exit_reduces_the_other_and_ends_the_entry(slow: SimulatedBroker) -> None:
    entry = req("entry", order_type="limit", limit_price=201)
    await slow.submit_bracket(entry, *legs())  # 4 filled, legs of 4
    slow.set_quote("AAPL", 199.95, 200.05)  # 8 filled, legs of 8
    slow.set_quote("AAPL", 210.0, 210.1)  # the take profit sells 4; the entry does not cross
    assert await state(slow, "tp") == (OrderStatus.PARTIALLY_FILLED, 8, 4)
    assert await state(slow, "sl") == (ACCEPTED, 4, 0)
    assert await state(slow, "entry") == (CANCELED, 10, 8)  # no more buying into an exit
    slow.set_quote("AAPL", 210.0, 210.1)
    assert await state(slow, "tp") == (FILLED, 8, 8)
    assert await state(slow, "sl") == (CANCELED, 4, 0)
    assert await slow.positions() == []


async def test_an_entry_cancelled_unfilled_cancels_its_held_legs(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry", order_type="limit", limit_price=199), *legs())
    drain(sim)
    await sim.cancel("entry")
    assert [await state(sim, c) for c in ("entry", "sl", "tp")] == [(CANCELED, 10, 0)] * 3
    events = {e.order.client_order_id: e.reason for e in drain(sim)}
    assert events["sl"] == "bracket: entry entry canceled with nothing filled"
    assert await sim.open_orders() == []


async def test_an_entry_cancelled_after_a_partial_fill_keeps_its_legs(
    slow: SimulatedBroker,
) -> None:
    await slow.submit_bracket(req("entry"), *legs())  # 4 filled
    await slow.cancel("entry")
    assert await state(slow, "sl") == (ACCEPTED, 4, 0)
    assert await state(slow, "tp") == (ACCEPTED, 4, 0)
    slow.set_quote("AAPL", 194.9, 195.0)
    assert await state(slow, "sl") == (FILLED, 4, 4)
    assert await slow.positions() == []


async def test_an_ioc_entry_that_misses_cancels_its_legs(sim: SimulatedBroker) -> None:
    entry = OrderRequest(
        client_order_id="entry",
        symbol="AAPL",
        side="buy",
        quantity=10,
        order_type="limit",
        limit_price=199,
        time_in_force="ioc",
    )
    placed = await sim.submit_bracket(entry, *legs())
    assert [o.status for o in placed] == [CANCELED] * 3


async def test_a_sell_entry_has_its_exits_the_other_way_round(sim: SimulatedBroker) -> None:
    stop = req("sl", "buy", order_type="stop", stop_price=205)
    target = req("tp", "buy", order_type="limit", limit_price=190)
    placed = await sim.submit_bracket(req("entry", "sell"), stop, target)
    assert [o.status for o in placed] == [FILLED, ACCEPTED, ACCEPTED]
    sim.set_quote("AAPL", 204.9, 205.0)
    assert await state(sim, "sl") == (FILLED, 10, 10)
    assert await state(sim, "tp") == (CANCELED, 10, 0)
    assert await sim.positions() == []


async def test_cancel_all_reports_held_legs_once(sim: SimulatedBroker) -> None:
    placed: list[BrokerOrder] = await sim.submit_bracket(
        req("entry", order_type="limit", limit_price=199), *legs()
    )
    report = await sim.cancel_all()
    assert sorted(report.cancelled) == sorted(o.broker_order_id for o in placed)
    cancels = [e for e in drain(sim) if e.order.status is CANCELED]
    assert len(cancels) == 3


async def test_legs_work_for_what_an_entry_replaced_up_filled(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry", order_type="limit", limit_price=199), *legs())
    await sim.replace("entry", OrderChange(quantity=20))
    sim.set_quote("AAPL", 198.9, 199.0)
    assert await state(sim, "sl") == (ACCEPTED, 20, 0)
    assert await state(sim, "tp") == (ACCEPTED, 20, 0)


async def test_a_short_bracket_reserves_no_buying_power_for_its_exits() -> None:
    plain, bracketed = (SimulatedBroker(quotes=QUOTES, tick_s=3600) for _ in range(2))
    for broker in (plain, bracketed):
        await broker.connect()
    try:
        await plain.submit(req("entry", "sell"))
        stop = req("sl", "buy", order_type="stop", stop_price=205)
        target = req("tp", "buy", order_type="limit", limit_price=190)
        await bracketed.submit_bracket(req("entry", "sell"), stop, target)
        assert (await bracketed.account()).buying_power == (await plain.account()).buying_power
        held = req("e2", "sell", order_type="limit", limit_price=201)
        stop2 = req("sl2", "buy", order_type="stop", stop_price=205)
        await bracketed.submit_bracket(held, stop2, None)  # held legs reserve nothing either
        assert (await bracketed.account()).buying_power == (await plain.account()).buying_power
    finally:
        for broker in (plain, bracketed):
            await broker.close()


async def test_a_leg_is_placed_without_buying_power(sim: SimulatedBroker) -> None:
    # 490 to cover at 205 would be 100450, more than the 100000 the account could buy
    stop = req("sl", "buy", 490, order_type="stop", stop_price=205)
    placed = await sim.submit_bracket(req("entry", "sell", 490), stop, None)
    assert [o.status for o in placed] == [FILLED, ACCEPTED]
