"""One-cancels-other groups on the simulated broker (the exits of a bracket): when one member
fills, the others are cancelled; when it fills partly, the others shrink to what it has left."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import OrderChange, OrderRequest, OrderStatus
from brokers.errors import OrderNotFound, OrderRejected
from brokers.simulated import SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)}


def exit_order(coid: str, qty: Any = 10, symbol: str = "AAPL", **kwargs: Any) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol=symbol,
        side="sell",
        quantity=qty,
        time_in_force="gtc",
        **kwargs,
    )


async def bracket(sim: SimulatedBroker, qty: int = 10) -> str:
    """A long position of ``qty`` with its stop at 195 and take profit at 210, linked."""
    await sim.submit(OrderRequest(client_order_id="entry", symbol="AAPL", side="buy", quantity=qty))
    await sim.submit(exit_order("sl", qty, order_type="stop", stop_price=195))
    await sim.submit(exit_order("tp", qty, order_type="limit", limit_price=210))
    return await sim.link_oco(["sl", "tp"])


async def get(sim: SimulatedBroker, coid: str) -> tuple[OrderStatus, Decimal, Decimal]:
    got = await sim.get_order(coid)
    assert got is not None
    return got.status, got.quantity, got.filled_quantity


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600)
    await broker.connect()
    yield broker
    await broker.close()


async def test_the_take_profit_filling_cancels_the_stop(sim: SimulatedBroker) -> None:
    group = await bracket(sim)
    assert sim.oco_group("sl") == sim.oco_group("tp") == ["sl", "tp"]
    assert group.startswith("oco-")
    _, changed = sim.set_quote("AAPL", 210.0, 210.1)
    assert {(o.client_order_id, o.status) for o in changed} == {
        ("tp", OrderStatus.FILLED),
        ("sl", OrderStatus.CANCELED),
    }
    assert await get(sim, "sl") == (OrderStatus.CANCELED, 10, 0)
    assert await sim.positions() == []
    sim.set_quote("AAPL", 190, 190.1)  # through the old stop: nothing fires into a closed position
    assert await sim.positions() == []


async def test_the_stop_filling_cancels_the_take_profit(sim: SimulatedBroker) -> None:
    await bracket(sim)
    sim.set_quote("AAPL", 194.9, 195.0)
    assert (await get(sim, "sl"))[0] is OrderStatus.FILLED
    assert (await get(sim, "tp"))[0] is OrderStatus.CANCELED
    assert await sim.open_orders() == []


async def test_a_partial_fill_shrinks_the_others_to_what_is_left() -> None:
    sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, fill_quantity_per_tick=4)
    await sim.connect()
    try:
        await bracket(sim, qty=4)  # the entry fills whole in one tick of 4
        await sim.submit(
            OrderRequest(client_order_id="more", symbol="AAPL", side="buy", quantity=6)
        )
        sim.set_quote("AAPL", 199.95, 200.05)  # the last 2 of "more": a position of 10
        # Grow both legs to 10 (the gateway's job when the position grows).
        await sim.replace("sl", OrderChange(quantity=10))
        await sim.replace("tp", OrderChange(quantity=10))
        expected = [(4, 6), (8, 2)]
        for tp_filled, sl_quantity in expected:
            sim.set_quote("AAPL", 210.0, 210.1)
            assert await get(sim, "tp") == (OrderStatus.PARTIALLY_FILLED, 10, tp_filled)
            assert await get(sim, "sl") == (OrderStatus.ACCEPTED, sl_quantity, 0)
        sim.set_quote("AAPL", 210.0, 210.1)
        assert await get(sim, "tp") == (OrderStatus.FILLED, 10, 10)
        assert await get(sim, "sl") == (OrderStatus.CANCELED, 2, 0)
        assert await sim.positions() == []
    finally:
        await sim.close()


async def test_a_cancel_of_one_member_leaves_the_other(sim: SimulatedBroker) -> None:
    await bracket(sim)
    await sim.cancel("tp")
    assert (await get(sim, "sl"))[0] is OrderStatus.ACCEPTED


async def test_orders_outside_the_group_are_left_alone(sim: SimulatedBroker) -> None:
    await bracket(sim)
    await sim.submit(exit_order("other", 1, order_type="limit", limit_price=211))
    sim.set_quote("AAPL", 210.0, 210.1)
    assert (await get(sim, "other"))[0] is OrderStatus.ACCEPTED


@pytest.mark.parametrize(
    ("ids", "code"),
    [
        (["a"], "oco_invalid"),
        (["a", "a"], "oco_invalid"),
        (["a", "msft"], "oco_invalid"),
        (["a", "done"], "order_not_open"),
        (["a", "sl"], "oco_invalid"),  # sl is in a group already
    ],
)
async def test_a_group_that_cannot_be_is_refused_and_links_nothing(
    sim: SimulatedBroker, ids: list[str], code: str
) -> None:
    await bracket(sim)
    await sim.submit(exit_order("a", 1, order_type="limit", limit_price=220))
    await sim.submit(exit_order("msft", 1, symbol="MSFT", order_type="limit", limit_price=500))
    await sim.submit(exit_order("done", 1))  # a market sell: filled, final
    with pytest.raises(OrderRejected) as info:
        await sim.link_oco(ids)
    assert info.value.code == code
    assert sim.oco_group("a") == []
    assert sim.oco_group("sl") == ["sl", "tp"]


async def test_linking_an_unknown_order_is_not_found(sim: SimulatedBroker) -> None:
    await sim.submit(exit_order("a", 1, order_type="limit", limit_price=220))
    with pytest.raises(OrderNotFound):
        await sim.link_oco(["a", "nobody"])
    assert sim.oco_group("a") == []
