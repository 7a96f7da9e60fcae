"""The retry layer's plain first attempt (tenacity entered only after a retryable failure,
replayed as attempt 1) against the simulated broker's and a scripted broker's faults.

Guarantees pinned (brokers/retrying.py "submit: never a second order for one client_order_id";
DESIGN "Stops and protective orders at the broker" / the retry contract):
- a transient failure on the FIRST (plain) attempt of a submit whose order did land (the
  simulated broker's 'lose_submit_answers' drill) makes the next attempt look the order up
  and adopt it: one order at the broker, one submit call;
- the whole call still makes exactly ``attempts`` attempts (the replayed failure is attempt 1):
  against a broker that keeps failing, one submit and attempts - 1 look-ups, then AnswerUnknown;
- a definite error on the first attempt is raised as is, never retried;
- asyncio.CancelledError during the first attempt propagates at once: no retry, no look-up,
  no second submit (and no tenacity wait)."""

from __future__ import annotations

import asyncio

import pytest

from brokers.base import SHARED_COMMIT, OrderRequest
from brokers.errors import AnswerUnknown, BrokerUnavailable, OrderRejected
from brokers.retrying import RetryingBroker, RetryPolicy
from brokers.simulated import Faults, SimulatedBroker
from tests.fakes.recorded_sleep import RecordedSleep
from tests.fakes.scripted_broker import LOST, ScriptedBroker

ORDER = OrderRequest(
    client_order_id="a3-1",
    symbol="AAPL",
    side="buy",
    quantity=3,
    order_type="limit",
    limit_price=150,
    time_in_force="gtc",
)


async def _sim(tmp_path: object = None) -> SimulatedBroker:
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)})
    await broker.connect()
    return broker


@pytest.mark.parametrize("shared", [False, True])
async def test_a_lost_answer_on_the_plain_first_attempt_is_looked_up_and_adopted(
    shared: bool,
) -> None:
    sim = await _sim()
    sim.set_faults(Faults(lose_submit_answers=1))
    waits = RecordedSleep()
    broker = RetryingBroker(sim, RetryPolicy(), sleep=waits)
    token = SHARED_COMMIT.set(shared)
    try:
        placed = await broker.submit(ORDER)
    finally:
        SHARED_COMMIT.reset(token)
    assert placed.client_order_id == ORDER.client_order_id
    assert dict(sim.submit_counts) == {ORDER.client_order_id: 1}
    assert [o.client_order_id for o in await sim.open_orders()] == [ORDER.client_order_id]
    assert len(waits.seconds) == 1  # the replayed failure was attempt 1; one wait, then a look-up
    await sim.close()


async def test_a_broker_that_keeps_failing_after_a_landed_first_attempt_gets_attempts_calls() -> (
    None
):
    inner = ScriptedBroker(
        {"submit": [LOST]}, otherwise=BrokerUnavailable("service unavailable", status=503)
    )
    waits = RecordedSleep()
    broker = RetryingBroker(inner, RetryPolicy(attempts=4), sleep=waits)
    with pytest.raises(AnswerUnknown):
        await broker.submit(ORDER)
    assert inner.count("submit") == 1
    assert inner.count("get_order") == 3
    assert len(waits.seconds) == 3
    assert inner.placed == [ORDER.client_order_id]


async def test_a_definite_error_on_the_first_attempt_is_not_retried() -> None:
    inner = ScriptedBroker({"submit": [OrderRejected("no", code="x")]})
    waits = RecordedSleep()
    broker = RetryingBroker(inner, RetryPolicy(), sleep=waits)
    with pytest.raises(OrderRejected):
        await broker.submit(ORDER)
    assert inner.calls.count("submit") == 1
    assert inner.count("get_order") == 0
    assert waits.seconds == []


async def test_cancellation_during_the_first_attempt_is_neither_retried_nor_looked_up() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    inner = ScriptedBroker()
    real_submit = inner.submit

    async def held(order: OrderRequest):  # type: ignore[no-untyped-def]
        entered.set()
        await release.wait()
        return await real_submit(order)

    inner.submit = held  # type: ignore[method-assign]
    waits = RecordedSleep()
    broker = RetryingBroker(inner, RetryPolicy(), sleep=waits)
    task = asyncio.create_task(broker.submit(ORDER))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.count("get_order") == 0
    assert inner.placed == []
    assert waits.seconds == []
