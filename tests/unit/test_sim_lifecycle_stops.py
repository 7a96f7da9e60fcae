"""Stop and stop_limit orders on the simulated broker: a buy stop triggers when the ask reaches
its stop, a sell stop when the bid does (exactly at the boundary, not one tick before); a
triggered stop fills like a market order, a triggered stop_limit rests as a limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import OrderChange, OrderRequest, OrderStatus
from brokers.errors import OrderRejected
from brokers.simulated import SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05)}


def stop(coid: str, side: str, stop_price: Any, qty: Any = 10, **kwargs: Any) -> OrderRequest:
    kind = "stop_limit" if "limit_price" in kwargs else "stop"
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side=side,
        quantity=qty,
        order_type=kind,
        stop_price=stop_price,
        time_in_force="gtc",
        **kwargs,
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600)
    await broker.connect()
    yield broker
    await broker.close()


async def status(sim: SimulatedBroker, coid: str) -> OrderStatus:
    got = await sim.get_order(coid)
    assert got is not None
    return got.status


async def test_a_buy_stop_triggers_when_the_ask_reaches_it(sim: SimulatedBroker) -> None:
    placed = await sim.submit(stop("bs", "buy", 201))
    assert placed.status is OrderStatus.ACCEPTED
    assert placed.stop_price == Decimal(201)
    _, changed = sim.set_quote("AAPL", 200.90, 200.99)  # one cent short
    assert changed == []
    assert await status(sim, "bs") is OrderStatus.ACCEPTED
    sim.set_quote("AAPL", 200.99, 201.00)  # the ask at the stop: triggered, filled at the ask
    got = await sim.get_order("bs")
    assert got is not None
    assert (got.status, got.avg_fill_price) == (OrderStatus.FILLED, Decimal("201.00"))


async def test_a_sell_stop_triggers_when_the_bid_reaches_it(sim: SimulatedBroker) -> None:
    await sim.submit(stop("ss", "sell", 195))
    sim.set_quote("AAPL", 195.01, 195.05)  # the bid one cent above
    assert await status(sim, "ss") is OrderStatus.ACCEPTED
    sim.set_quote("AAPL", 194.5, 194.6)  # gapped through: fills at the bid, like a market order
    got = await sim.get_order("ss")
    assert got is not None
    assert (got.status, got.avg_fill_price) == (OrderStatus.FILLED, Decimal("194.5"))
    assert [p.qty for p in await sim.positions()] == [Decimal(-10)]


async def test_a_sell_stop_at_exactly_the_bid_fills(sim: SimulatedBroker) -> None:
    await sim.submit(stop("ss", "sell", 195))
    sim.set_quote("AAPL", 195.00, 195.05)
    assert await status(sim, "ss") is OrderStatus.FILLED


async def test_a_triggered_stop_limit_rests_as_a_limit_and_stays_triggered(
    sim: SimulatedBroker,
) -> None:
    await sim.submit(stop("bsl", "buy", 201, limit_price=201.5))
    sim.set_quote("AAPL", 201.9, 202.0)  # triggered, but the ask is above the limit
    assert await status(sim, "bsl") is OrderStatus.ACCEPTED
    sim.set_quote("AAPL", 200.8, 200.9)  # the ask below the stop again, within the limit: fills
    got = await sim.get_order("bsl")
    assert got is not None
    assert (got.status, got.avg_fill_price) == (OrderStatus.FILLED, Decimal("200.9"))


async def test_an_untriggered_stop_limit_never_fills(sim: SimulatedBroker) -> None:
    await sim.submit(stop("bsl", "buy", 201, limit_price=201.5))
    sim.set_quote("AAPL", 200.4, 200.5)  # within the limit, but the stop never reached
    assert await status(sim, "bsl") is OrderStatus.ACCEPTED


async def test_a_stop_already_reached_at_submit_fills_at_once(sim: SimulatedBroker) -> None:
    placed = await sim.submit(stop("late", "buy", 199))
    assert (placed.status, placed.avg_fill_price) == (OrderStatus.FILLED, Decimal("200.05"))


async def test_a_buy_stop_holds_buying_power_at_max_of_stop_and_ask(sim: SimulatedBroker) -> None:
    await sim.submit(stop("bs", "buy", 250, qty=100))
    assert (await sim.account()).buying_power == Decimal(100000) - 100 * Decimal(250)
    # 300 more at 250 is exactly what is left: taken; one more is refused.
    await sim.submit(stop("bs2", "buy", 250, qty=300))
    with pytest.raises(OrderRejected) as info:
        await sim.submit(stop("bs3", "buy", 250, qty=1))
    assert info.value.code == "buying_power"
    assert await sim.get_order("bs3") is None


async def test_a_sell_stop_holds_no_buying_power(sim: SimulatedBroker) -> None:
    await sim.submit(stop("ss", "sell", 150, qty=1000))
    assert (await sim.account()).buying_power == Decimal(100000)


async def test_moving_a_stop_keeps_it_resting_until_the_new_stop(sim: SimulatedBroker) -> None:
    placed = await sim.submit(stop("ss", "sell", 190))
    moved = await sim.replace("ss", OrderChange(stop_price=196))
    assert (moved.broker_order_id, moved.stop_price) == (placed.broker_order_id, Decimal(196))
    sim.set_quote("AAPL", 196.5, 196.6)
    assert await status(sim, "ss") is OrderStatus.ACCEPTED
    sim.set_quote("AAPL", 196.0, 196.1)
    assert await status(sim, "ss") is OrderStatus.FILLED


async def test_moving_a_stop_through_the_market_triggers_it(sim: SimulatedBroker) -> None:
    await sim.submit(stop("ss", "sell", 190))
    moved = await sim.replace("ss", OrderChange(stop_price=199.95))
    assert (moved.status, moved.avg_fill_price) == (OrderStatus.FILLED, Decimal("199.95"))


async def test_a_stop_limits_limit_can_be_moved(sim: SimulatedBroker) -> None:
    await sim.submit(stop("bsl", "buy", 201, limit_price=201.5))
    sim.set_quote("AAPL", 201.9, 202.0)  # triggered, above the limit
    moved = await sim.replace("bsl", OrderChange(limit_price=202))
    assert (moved.status, moved.avg_fill_price) == (OrderStatus.FILLED, Decimal("202.0"))
