"""What a bracket asks of the simulated broker: refused whole when malformed or priced on the
wrong side (nothing placed), idempotent on its ids, one call for the fire drills, and its legs
replaced, cancelled and read back like any order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import OrderChange, OrderRequest, OrderStatus
from brokers.errors import BrokerUnavailable, DuplicateOrder, OrderNotFound, OrderRejected
from brokers.simulated import Faults, SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)}
ACCEPTED, FILLED, CANCELED, NEW = (
    OrderStatus.ACCEPTED,
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.NEW,
)


def req(coid: str, side: str = "buy", qty: Any = 10, **kwargs: Any) -> OrderRequest:
    fields: dict[str, Any] = {"symbol": "AAPL", "time_in_force": "gtc", **kwargs}
    return OrderRequest(client_order_id=coid, side=side, quantity=qty, **fields)


def stop(price: Any = 195, side: str = "sell", **kwargs: Any) -> OrderRequest:
    return req("sl", side, order_type="stop", stop_price=price, **kwargs)


def target(price: Any = 210, side: str = "sell", **kwargs: Any) -> OrderRequest:
    return req("tp", side, order_type="limit", limit_price=price, **kwargs)


async def state(sim: SimulatedBroker, coid: str) -> tuple[OrderStatus, Decimal, Decimal]:
    got = await sim.get_order(coid)
    assert got is not None
    return got.status, got.quantity, got.filled_quantity


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedBroker]:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600)
    await broker.connect()
    yield broker
    await broker.close()


async def nothing_placed(sim: SimulatedBroker) -> None:
    assert await sim.open_orders() == []
    assert await sim.positions() == []
    for coid in ("entry", "sl", "tp"):
        assert await sim.get_order(coid) is None
    assert sim._ledger.next_id == 1  # no id handed out


WRONG_PRICES = [
    pytest.param(
        req("entry"), stop(200.05), target(), "stop_loss.stop_price", id="buy-stop-at-ask"
    ),
    pytest.param(req("entry"), stop(201), target(), "stop_loss.stop_price", id="buy-stop-above"),
    pytest.param(req("entry"), stop(), target(200.05), "take_profit", id="buy-target-at-ask"),
    pytest.param(req("entry"), stop(), target(199), "take_profit", id="buy-target-below"),
    pytest.param(
        req("entry", order_type="limit", limit_price=190),
        stop(),
        target(),
        "stop_loss.stop_price",
        id="buy-limit-stop-above-limit",
    ),
    pytest.param(
        req("entry", order_type="limit", limit_price=212),
        stop(),
        target(),
        "take_profit",
        id="buy-limit-target-below-limit",
    ),
    pytest.param(
        req("entry", "sell"), stop(199.95, "buy"), None, "stop_loss", id="sell-stop-at-bid"
    ),
    pytest.param(
        req("entry", "sell"), None, target(199.95, "buy"), "take_profit", id="sell-target-at-bid"
    ),
    pytest.param(
        req("entry", "sell"),
        stop(195, "buy"),
        target(190, "buy"),
        "stop_loss",
        id="sell-stop-below",
    ),
]


@pytest.mark.parametrize(("entry", "sl", "tp", "field"), WRONG_PRICES)
async def test_wrong_side_prices_are_refused_with_nothing_placed(
    sim: SimulatedBroker,
    entry: OrderRequest,
    sl: OrderRequest | None,
    tp: OrderRequest | None,
    field: str,
) -> None:
    with pytest.raises(OrderRejected) as refused:
        await sim.submit_bracket(entry, sl, tp)
    assert refused.value.code == "protective_price_invalid"
    assert field in refused.value.message
    await nothing_placed(sim)


MALFORMED = [
    pytest.param(None, None, "at least one exit", id="no-exit"),
    pytest.param(stop(side="buy"), None, "stop_loss.side", id="stop-on-the-entry-side"),
    pytest.param(None, target(side="buy"), "take_profit.side", id="target-on-the-entry-side"),
    pytest.param(stop(qty=5), target(), "stop_loss.quantity", id="stop-of-another-quantity"),
    pytest.param(stop(), target(qty=11), "take_profit.quantity", id="target-other-quantity"),
    pytest.param(stop(symbol="MSFT"), None, "stop_loss.symbol", id="stop-of-another-symbol"),
    pytest.param(
        req("sl", "sell", order_type="limit", limit_price=195),
        None,
        "stop_loss.order_type",
        id="stop-that-is-a-limit",
    ),
    pytest.param(
        None,
        req("tp", "sell", order_type="stop", stop_price=210),
        "take_profit.order_type",
        id="target-that-is-a-stop",
    ),
    pytest.param(
        stop(), req("sl", "sell", order_type="limit", limit_price=210), "ids", id="shared-id"
    ),
]


@pytest.mark.parametrize(("sl", "tp", "field"), MALFORMED)
async def test_malformed_brackets_are_refused_with_nothing_placed(
    sim: SimulatedBroker, sl: OrderRequest | None, tp: OrderRequest | None, field: str
) -> None:
    with pytest.raises(OrderRejected) as refused:
        await sim.submit_bracket(req("entry"), sl, tp)
    assert refused.value.code == "bracket_invalid"
    assert field in refused.value.message
    await nothing_placed(sim)


async def test_a_stop_limit_stop_loss_and_a_stop_entry_are_taken(sim: SimulatedBroker) -> None:
    entry = req("entry", order_type="stop", stop_price=202)
    sl = req("sl", "sell", order_type="stop_limit", stop_price=198, limit_price=197.5)
    placed = await sim.submit_bracket(entry, sl, target(205))
    assert [o.status for o in placed] == [ACCEPTED, NEW, NEW]
    sim.set_quote("AAPL", 201.95, 202.05)  # the entry's stop triggers: it buys
    assert [(await state(sim, c))[0] for c in ("entry", "sl", "tp")] == [FILLED, ACCEPTED, ACCEPTED]


async def test_an_unknown_symbol_is_refused(sim: SimulatedBroker) -> None:
    with pytest.raises(OrderRejected) as refused:
        await sim.submit_bracket(req("entry", symbol="NOPE"), stop(symbol="NOPE"), None)
    assert refused.value.code == "unknown_symbol"
    await nothing_placed(sim)


# --- idempotency -----------------------------------------------------------------------------


async def test_the_same_bracket_again_answers_what_exists(sim: SimulatedBroker) -> None:
    first = await sim.submit_bracket(req("entry"), stop(), target())
    sim.set_quote("AAPL", 205, 205.1)
    again = await sim.submit_bracket(req("entry"), stop(), target())
    assert again == first  # nothing placed twice, nothing filled twice
    assert (await sim.positions())[0].qty == 10
    assert sim._ledger.next_id == 4
    assert sim.submit_counts["entry"] == 2


@pytest.mark.parametrize(
    ("entry", "sl", "tp"),
    [
        pytest.param(req("entry", "sell"), stop(205, "buy"), target(190, "buy"), id="other-side"),
        pytest.param(req("entry"), stop(), None, id="a-leg-less"),
        pytest.param(
            req("entry"), req("x", "sell", order_type="stop", stop_price=195), target(), id="other"
        ),
        pytest.param(req("entry"), target(), None, id="take-profit-as-stop"),
        pytest.param(
            req("entry"),
            req("tp", "sell", order_type="limit", limit_price=210),
            req("sl", "sell", order_type="stop", stop_price=195),
            id="roles-swapped",
        ),
    ],
)
async def test_a_different_bracket_under_known_ids_is_a_duplicate(
    sim: SimulatedBroker, entry: OrderRequest, sl: OrderRequest | None, tp: OrderRequest | None
) -> None:
    await sim.submit_bracket(req("entry"), stop(), target())
    with pytest.raises(DuplicateOrder):
        await sim.submit_bracket(entry, sl, tp)
    assert sim._ledger.next_id == 4


async def test_a_bracket_over_a_plain_order_is_a_duplicate(sim: SimulatedBroker) -> None:
    await sim.submit(req("entry", order_type="limit", limit_price=199))
    with pytest.raises(DuplicateOrder):
        await sim.submit_bracket(req("entry", order_type="limit", limit_price=199), stop(), None)
    await sim.submit(req("sl2", "sell", order_type="stop", stop_price=190))
    with pytest.raises(DuplicateOrder):  # a leg's id known already
        await sim.submit_bracket(
            req("e2"), req("sl2", "sell", order_type="stop", stop_price=190), None
        )
    assert await sim.get_order("e2") is None


# --- fire drills -----------------------------------------------------------------------------


async def test_a_rejected_bracket_places_nothing(sim: SimulatedBroker) -> None:
    sim.set_faults(Faults(reject_submits=1))
    with pytest.raises(OrderRejected) as refused:
        await sim.submit_bracket(req("entry"), stop(), target())
    assert refused.value.code == "drill_reject"
    await nothing_placed(sim)
    assert sim.faults.reject_submits == 0  # one bracket, one rejection
    placed = await sim.submit_bracket(req("entry"), stop(), target())
    assert [o.status for o in placed] == [FILLED, ACCEPTED, ACCEPTED]


async def test_a_lost_answer_places_the_bracket_and_a_retry_finds_it(sim: SimulatedBroker) -> None:
    sim.set_faults(Faults(lose_submit_answers=1))
    with pytest.raises(BrokerUnavailable):
        await sim.submit_bracket(req("entry"), stop(), target())
    assert sim.faults.lose_submit_answers == 0
    assert {o.client_order_id for o in await sim.open_orders()} == {"sl", "tp"}
    placed = await sim.submit_bracket(req("entry"), stop(), target())
    assert [o.status for o in placed] == [FILLED, ACCEPTED, ACCEPTED]
    assert (await sim.positions())[0].qty == 10


async def test_a_lost_answer_hides_a_refusal_too(sim: SimulatedBroker) -> None:
    sim.set_faults(Faults(lose_submit_answers=1))
    with pytest.raises(BrokerUnavailable):  # the refusal's answer is lost like any other
        await sim.submit_bracket(req("entry"), stop(201), None)
    await nothing_placed(sim)


async def test_latency_delays_the_bracket(sim: SimulatedBroker) -> None:
    sim.set_faults(Faults(latency_ms=50))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sim.submit_bracket(req("entry"), stop(), target())
    assert loop.time() - started >= 0.045


async def test_lookups_failing_fail_adopt(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry"), stop(), target())
    sim.set_faults(Faults(fail_lookups_s=60))
    with pytest.raises(BrokerUnavailable):
        await sim.adopt_bracket("entry", "sl", "tp")


# --- legs alone ------------------------------------------------------------------------------


async def test_a_stop_leg_moves_and_shrinks_like_any_order(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry"), stop(), target())
    moved = await sim.replace("sl", OrderChange(stop_price=198, quantity=6))
    assert (moved.stop_price, moved.quantity, moved.status) == (198, 6, ACCEPTED)
    assert sim.oco_group("sl") == ["sl", "tp"]
    sim.set_quote("AAPL", 197.9, 198.0)  # through the moved stop
    assert await state(sim, "sl") == (FILLED, 6, 6)
    assert await state(sim, "tp") == (CANCELED, 10, 0)
    assert (await sim.positions())[0].qty == 4


async def test_a_leg_is_replaced_without_buying_power(sim: SimulatedBroker) -> None:
    # a short of 400 at ~200: its buy stop to cover needs no buying power of its own
    entry = req("entry", "sell", 400)
    await sim.submit_bracket(entry, stop(205, "buy", qty=400), None)
    moved = await sim.replace("sl", OrderChange(stop_price=206))
    assert moved.stop_price == 206


async def test_cancelling_a_leg_cancels_only_that_leg(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry"), stop(), target())
    await sim.cancel("tp")
    assert await state(sim, "tp") == (CANCELED, 10, 0)
    assert await state(sim, "sl") == (ACCEPTED, 10, 0)
    assert await state(sim, "entry") == (FILLED, 10, 10)
    sim.set_quote("AAPL", 194.9, 195)
    assert await sim.positions() == []


async def test_a_held_leg_cancelled_stays_so_when_the_entry_fills(sim: SimulatedBroker) -> None:
    await sim.submit_bracket(req("entry", order_type="limit", limit_price=199), stop(), target())
    await sim.cancel("tp")
    sim.set_quote("AAPL", 198.9, 199)
    assert await state(sim, "entry") == (FILLED, 10, 10)
    assert await state(sim, "tp") == (CANCELED, 10, 0)
    assert await state(sim, "sl") == (ACCEPTED, 10, 0)


async def test_adopt_reads_the_bracket_back(sim: SimulatedBroker) -> None:
    placed = await sim.submit_bracket(req("entry"), stop(), target())
    assert await sim.adopt_bracket("entry", "sl", "tp") == placed
    assert await sim.adopt_bracket("entry", "sl", None) == placed[:2]
    for ids in (("nope", "sl", "tp"), ("entry", "tp", None), ("entry", None, "sl")):
        with pytest.raises(OrderNotFound):
            await sim.adopt_bracket(*ids)
