"""Fire drills on the simulated broker: each fault does exactly what faults.py says, through the
broker's own calls, and fails the way a real outage would (no drill-only error types)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from brokers.base import OrderEvent, OrderRequest
from brokers.errors import BrokerError, BrokerUnavailable, NotSent, OrderRejected
from brokers.simulated import SimulatedBroker
from brokers.simulated.faults import Faults

QUOTES = {"AAPL": (199.95, 200.05), "SPY": (589.95, 590.05)}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def market(coid: str, qty: int = 10, side: str = "buy") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty)


def resting(coid: str, qty: int = 5) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side="buy",
        quantity=qty,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def broker(clock: Clock) -> AsyncIterator[SimulatedBroker]:
    sim = SimulatedBroker(quotes=QUOTES, clock=clock, tick_s=3600)
    await sim.connect()
    yield sim
    await sim.close()


def drain_order_events(sim: SimulatedBroker) -> list[OrderEvent]:
    events = []
    while not sim._events.empty():
        event = sim._events.get_nowait()
        if isinstance(event, OrderEvent):
            events.append(event)
    return events


async def raised(call: Awaitable[Any]) -> BaseException:
    with pytest.raises(BrokerError) as info:
        await call
    return info.value


# --- faults in force ---------------------------------------------------------------------------


async def test_no_faults_by_default(broker: SimulatedBroker) -> None:
    assert broker.faults == Faults()


async def test_set_faults_replaces_the_whole_set_and_empty_clears_it(
    broker: SimulatedBroker,
) -> None:
    first = broker.set_faults(Faults(latency_ms=5, reject_submits=3, fail_lookups_s=30))
    assert first == Faults(latency_ms=5, reject_submits=3, fail_lookups_s=30)
    second = broker.set_faults(Faults(lose_submit_answers=1))
    assert second == Faults(lose_submit_answers=1)  # latency, rejects and look-ups are gone
    assert broker.faults == second
    assert broker.set_faults(Faults.model_validate({})) == Faults()
    placed = await broker.submit(market("after-clear"))
    assert placed.status == "filled"


async def test_faults_given_to_the_constructor_are_in_force(clock: Clock) -> None:
    sim = SimulatedBroker(quotes=QUOTES, clock=clock, faults=Faults(reject_submits=1))
    await sim.connect()
    try:
        assert sim.faults.reject_submits == 1
        error = await raised(sim.submit(market("first")))
        assert isinstance(error, OrderRejected)
    finally:
        await sim.close()


def test_bad_fault_values_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="latency_ms"):
        Faults(latency_ms=-1)
    with pytest.raises(ValidationError, match="reject_submits"):
        Faults.model_validate({"reject_submits": 1.5})
    with pytest.raises(ValidationError, match="latency"):
        Faults.model_validate({"latency": 5})
    for field in Faults.model_fields:  # true is not 1: a boolean is no number of anything
        with pytest.raises(ValidationError, match=field):
            Faults.model_validate({field: True})


# --- reject_submits ----------------------------------------------------------------------------


async def test_reject_submits_refuses_the_next_n_and_places_nothing(
    broker: SimulatedBroker,
) -> None:
    broker.set_faults(Faults(reject_submits=2))
    for coid in ("r-1", "r-2"):
        error = await raised(broker.submit(market(coid)))
        assert type(error) is OrderRejected and error.code == "drill_reject"
        assert not error.transient
        assert await broker.get_order(coid) is None
    assert await broker.positions() == []
    assert drain_order_events(broker) == []
    assert broker.faults.reject_submits == 0
    assert (await broker.submit(market("r-3"))).status == "filled"  # the drill is used up


# --- lose_submit_answers -----------------------------------------------------------------------


async def test_a_lost_answer_is_a_transient_error_after_the_order_landed(
    broker: SimulatedBroker,
) -> None:
    broker.set_faults(Faults(lose_submit_answers=2))
    for request in (market("lost-fill"), resting("lost-rest")):
        error = await raised(broker.submit(request))
        # Exactly what a dropped connection raises: not NotSent (it may have landed).
        assert type(error) is BrokerUnavailable and error.transient
    filled = await broker.get_order("lost-fill")
    rests = await broker.get_order("lost-rest")
    assert filled is not None and filled.status == "filled"
    assert rests is not None and rests.status == "accepted"
    assert [o.client_order_id for o in await broker.open_orders()] == ["lost-rest"]
    assert [p.qty for p in await broker.positions()] == [10]
    events = drain_order_events(broker)
    assert [(e.order.client_order_id, e.order.status) for e in events] == [
        ("lost-fill", "filled"),
        ("lost-rest", "accepted"),
    ]
    assert broker.faults.lose_submit_answers == 0
    answered = await broker.submit(market("answered"))
    assert answered.status == "filled"


async def test_a_retried_submit_after_a_lost_answer_never_makes_a_second_order(
    broker: SimulatedBroker,
) -> None:
    broker.set_faults(Faults(lose_submit_answers=1))
    await raised(broker.submit(market("once")))
    again = await broker.submit(market("once"))  # the caller retries the same id
    assert again.broker_order_id == "sim-1"
    assert [p.qty for p in await broker.positions()] == [10]
    assert broker.submit_counts["once"] == 2


# --- fail_lookups_s ----------------------------------------------------------------------------


async def test_lookups_fail_for_the_seconds_given_on_the_brokers_clock(
    broker: SimulatedBroker, clock: Clock
) -> None:
    await broker.submit(resting("rest"))
    assert broker.set_faults(Faults(fail_lookups_s=5)).fail_lookups_s == 5
    for lookup in (broker.get_order("rest"), broker.open_orders()):
        error = await raised(lookup)
        assert type(error) is BrokerUnavailable and error.transient
    # Only look-ups fail: orders still go through.
    assert (await broker.submit(market("during"))).status == "filled"
    clock.advance(3)
    assert broker.faults.fail_lookups_s == pytest.approx(2)
    await raised(broker.get_order("rest"))
    clock.advance(2)
    assert broker.faults.fail_lookups_s == 0
    order = await broker.get_order("rest")
    assert order is not None and order.status == "accepted"
    assert [o.client_order_id for o in await broker.open_orders()] == ["rest"]


# --- latency_ms --------------------------------------------------------------------------------


async def _spin(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_latency_delays_a_submit_without_blocking_the_loop(broker: SimulatedBroker) -> None:
    broker.set_faults(Faults(latency_ms=200))
    pending = asyncio.create_task(broker.submit(market("slow")))
    await _spin()
    # The loop runs other work meanwhile, and the order has not taken effect yet.
    assert not pending.done()
    assert (await broker.quote("AAPL")).bid == Decimal("199.95")
    assert "slow" not in broker.submit_counts
    assert drain_order_events(broker) == []
    placed = await asyncio.wait_for(pending, timeout=10)
    assert placed.status == "filled"
    assert [p.qty for p in await broker.positions()] == [10]


@pytest.mark.parametrize("call", ["cancel", "cancel_all", "get_order", "open_orders"])
async def test_latency_delays_every_other_broker_call(broker: SimulatedBroker, call: str) -> None:
    await broker.submit(resting("rest"))
    broker.set_faults(Faults(latency_ms=200))
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "cancel": lambda: broker.cancel("rest"),
        "cancel_all": broker.cancel_all,
        "get_order": lambda: broker.get_order("rest"),
        "open_orders": broker.open_orders,
    }
    pending = asyncio.create_task(calls[call]())
    await _spin()
    assert not pending.done()
    assert "rest" in {o.client_order_id for o in broker._ledger.open.values()}  # not yet
    await asyncio.wait_for(pending, timeout=10)
    broker.set_faults(Faults())
    still_open = [o.client_order_id for o in await broker.open_orders()]
    assert still_open == ([] if call.startswith("cancel") else ["rest"])


async def test_concurrent_submits_under_latency_each_take_effect_whole(
    broker: SimulatedBroker,
) -> None:
    broker.set_faults(Faults(latency_ms=50))
    orders = [market(f"c-{i}", qty=1) for i in range(20)]
    placed = await asyncio.wait_for(asyncio.gather(*(broker.submit(o) for o in orders)), timeout=10)
    assert len({p.broker_order_id for p in placed}) == 20
    assert {p.broker_order_id for p in placed} == {f"sim-{i}" for i in range(1, 21)}
    assert [p.qty for p in await broker.positions()] == [20]


# --- not connected -----------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["submit", "cancel", "cancel_all", "get_order", "open_orders"])
async def test_a_call_without_a_connection_is_not_sent(clock: Clock, call: str) -> None:
    sim = SimulatedBroker(quotes=QUOTES, clock=clock)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "submit": lambda: sim.submit(market("x")),
        "cancel": lambda: sim.cancel("x"),
        "cancel_all": sim.cancel_all,
        "get_order": lambda: sim.get_order("x"),
        "open_orders": sim.open_orders,
    }
    error = await raised(calls[call]())
    assert type(error) is NotSent and error.transient
    assert sim.submit_counts == {}


async def test_a_broker_closed_during_the_latency_answers_unavailable_and_changes_nothing(
    broker: SimulatedBroker,
) -> None:
    broker.set_faults(Faults(latency_ms=200))
    pending = asyncio.create_task(broker.submit(market("cut")))
    await _spin()
    await broker.close()
    with pytest.raises(BrokerUnavailable) as info:
        await asyncio.wait_for(pending, timeout=10)
    assert type(info.value) is BrokerUnavailable  # it had left: not NotSent
    assert "cut" not in broker.submit_counts
