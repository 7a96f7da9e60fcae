"""Partial fills on the simulated broker (``fill_quantity_per_tick``): at most that much per quote
or tick, each fill its own with a unique, stable fill_id, quantities and average price
cumulative; a cancel or an IOC keeps what filled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import Fill, OrderChange, OrderEvent, OrderRequest, OrderStatus
from brokers.errors import OrderRejected
from brokers.simulated import SimulatedBroker
from gateway.config import ConfigError, GatewayConfig
from gateway.service import build_broker

QUOTES = {"AAPL": (199.95, 200.05)}


def order(coid: str, qty: Any = 10, side: str = "buy", **kwargs: Any) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty, **kwargs)


async def fills(sim: SimulatedBroker) -> list[Fill]:
    """Every fill published so far."""
    seen: list[Fill] = []
    stream = sim.events()
    while True:
        try:
            event = await asyncio.wait_for(anext(stream), 0.02)
        except TimeoutError:
            return seen
        if isinstance(event, OrderEvent) and event.fill is not None:
            seen.append(event.fill)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600, fill_quantity_per_tick=3)
    await broker.connect()
    yield broker
    await broker.close()


async def test_a_market_order_fills_piece_by_piece_to_its_quantity(sim: SimulatedBroker) -> None:
    first = await sim.submit(order("m"))
    assert (first.status, first.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 3)
    assert await sim.open_orders() == [first]
    states = [first]
    for _ in range(5):  # more quotes than it needs: a filled order fills no more
        sim.set_quote("AAPL", 199.95, 200.05)
        got = await sim.get_order("m")
        assert got is not None
        states.append(got)
    assert [s.filled_quantity for s in states] == [3, 6, 9, 10, 10, 10]
    assert states[-1].status is OrderStatus.FILLED
    seen = await fills(sim)
    assert [f.quantity for f in seen] == [3, 3, 3, 1]
    assert sum(f.quantity for f in seen) == 10
    assert [f.fill_id for f in seen] == [f"{first.broker_order_id}-{n}" for n in (1, 2, 3, 4)]
    assert [p.qty for p in await sim.positions()] == [Decimal(10)]


async def test_quantities_and_average_price_are_cumulative(sim: SimulatedBroker) -> None:
    await sim.submit(order("m", qty=6))  # 3 at 200.05
    _, [changed] = sim.set_quote("AAPL", 200.95, 201.05)  # 3 at 201.05
    assert changed.filled_quantity == 6
    assert changed.avg_fill_price == Decimal("200.55")
    assert (await sim.account()).cash == Decimal(100000) - Decimal(3) * Decimal("200.05") - Decimal(
        3
    ) * Decimal("201.05")


async def test_a_limit_fills_only_while_the_market_crosses_it(sim: SimulatedBroker) -> None:
    await sim.submit(order("l", order_type="limit", limit_price=200.10, time_in_force="gtc"))
    sim.set_quote("AAPL", 200.15, 200.25)  # above the limit: no fill
    sim.set_quote("AAPL", 199.95, 200.05)
    got = await sim.get_order("l")
    assert got is not None
    assert (got.filled_quantity, got.status) == (6, OrderStatus.PARTIALLY_FILLED)


async def test_the_ticker_keeps_filling_a_marketable_order() -> None:
    sim = SimulatedBroker(quotes=QUOTES, tick_s=0.01, fill_quantity_per_tick=2)
    await sim.connect()
    try:
        await sim.submit(order("m"))
        for _ in range(500):
            got = await sim.get_order("m")
            assert got is not None
            if got.status is OrderStatus.FILLED:
                break
            await asyncio.sleep(0.01)
        assert got.filled_quantity == 10
    finally:
        await sim.close()  # the ticker stops: what it published can be read to the end
    assert len({f.fill_id for f in await fills(sim)}) == 5


async def test_a_cancel_of_a_partly_filled_order_keeps_what_filled(sim: SimulatedBroker) -> None:
    await sim.submit(order("m"))
    await sim.cancel("m")
    got = await sim.get_order("m")
    assert got is not None
    assert (got.status, got.filled_quantity) == (OrderStatus.CANCELED, 3)
    sim.set_quote("AAPL", 199.95, 200.05)  # a cancelled order fills no more
    assert [p.qty for p in await sim.positions()] == [Decimal(3)]


async def test_an_ioc_fills_what_it_can_and_cancels_the_rest(sim: SimulatedBroker) -> None:
    got = await sim.submit(order("ioc", time_in_force="ioc"))
    assert (got.status, got.filled_quantity) == (OrderStatus.CANCELED, 3)


@pytest.mark.parametrize("qty", [3, 2])
async def test_a_replace_to_what_filled_or_below_is_refused(sim: SimulatedBroker, qty: int) -> None:
    await sim.submit(order("l", order_type="limit", limit_price=201, time_in_force="gtc"))
    before = await sim.get_order("l")
    with pytest.raises(OrderRejected) as info:
        await sim.replace("l", OrderChange(quantity=qty))
    assert info.value.code == "quantity_below_filled"
    assert "quantity" in str(info.value)
    assert await sim.get_order("l") == before


async def test_a_replace_above_what_filled_keeps_the_fills(sim: SimulatedBroker) -> None:
    await sim.submit(order("l", order_type="limit", limit_price=201, time_in_force="gtc"))
    # Shrunk to 4 (3 filled): the replace fills the last 1 at once, as the limit still crosses.
    got = await sim.replace("l", OrderChange(quantity=4))
    assert (got.status, got.filled_quantity, got.quantity) == (OrderStatus.FILLED, 4, 4)
    assert [f.fill_id.rsplit("-", 1)[1] for f in await fills(sim)] == ["1", "2"]


def test_the_setting_reaches_the_broker(make_config: Callable[..., GatewayConfig]) -> None:
    config = make_config(gateway={"brokers": {"simulated": {"fill_quantity_per_tick": 5}}})
    assert config.brokers.simulated.fill_quantity_per_tick == Decimal(5)
    assert isinstance(build_broker(config, {}), SimulatedBroker)
    assert make_config().brokers.simulated.fill_quantity_per_tick is None


async def test_built_from_the_config_it_fills_piece_by_piece(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config(
        gateway={"brokers": {"simulated": {"fill_quantity_per_tick": 4, "persist": False}}}
    )
    sim = build_broker(config, {})
    await sim.connect()
    try:
        symbol = next(iter(config.brokers.simulated.quotes))
        placed = await sim.submit(
            OrderRequest(client_order_id="m", symbol=symbol, side="buy", quantity=10)
        )
        assert placed.filled_quantity == 4
    finally:
        await sim.close()


@pytest.mark.parametrize("bad", [0, -1, "lots"])
def test_a_bad_setting_is_an_error_naming_it(
    make_config: Callable[..., GatewayConfig], bad: Any
) -> None:
    with pytest.raises(ConfigError, match="fill_quantity_per_tick"):
        make_config(gateway={"brokers": {"simulated": {"fill_quantity_per_tick": bad}}})
    with pytest.raises(ValueError, match="fill_quantity_per_tick"):
        SimulatedBroker(fill_quantity_per_tick=0)


async def test_fills_while_the_link_was_down_come_after_the_reconnect(
    sim: SimulatedBroker,
) -> None:
    await sim.submit(order("l", order_type="limit", limit_price=199, time_in_force="gtc"))
    await fills(sim)
    await sim.close()
    sim.set_quote("AAPL", 198.9, 199.0)  # the market moves while the link is down
    await sim.connect()
    seen = await fills(sim)
    assert [(f.fill_id, f.quantity) for f in seen] == [("sim-1-1", 3)]
    got = await sim.get_order("l")
    assert got is not None and got.filled_quantity == 3
