"""Kill switch and halts that land while signals wait for their intents' GROUP COMMIT.

Guarantees pinned (DESIGN "Risk states and triggers": HALTED blocks new orders; the kill switch
cancels every open order at the broker, including one on the wire; the engine's last gate, after
the intent is committed, refuses an order not yet sent once a halt is in force):
- signals whose intents are staged in the open journal group when the kill switch (or a halt)
  fires never reach the broker: their decision is blocked (halted), the order row canceled;
- whatever loop turn the kill lands on (before the group commit, with it, after it while the
  submits are on the wire), nothing rests at the broker once the kill has returned, and every
  submit that reached the broker is counted cancelled or is final."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.safety.halt_state import HaltTrigger
from gateway.service import GatewayService

N = 12


def resting(signal_id: str, n: int) -> Signal:
    return Signal(
        signal_id=signal_id,
        strategy=f"s{n % 3}",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )


async def _service(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], latency_ms: int
) -> tuple[GatewayService, SimulatedBroker]:
    config = make_config(
        risk={"pre_trade": {"max_orders_per_second": 1_000_000}},
    )
    service: GatewayService = await make_service(config)
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    if latency_ms:
        broker.set_faults(Faults(latency_ms=latency_ms))
    return service, broker


async def _staged(service: GatewayService, tasks: list[asyncio.Task[Any]]) -> None:
    """Turn the loop until the intents are staged in an open group with waiters."""
    tx = service.journal._tx
    for _ in range(200):
        if tx._waiters and tx._open:
            return
        await asyncio.sleep(0)
    raise AssertionError("the intents never waited for a group commit")


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, 8])
@pytest.mark.parametrize("latency_ms", [0, 5])
async def test_kill_while_intents_wait_for_their_group_commit_leaves_nothing_at_the_broker(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    turns: int,
    latency_ms: int,
) -> None:
    service, broker = await _service(make_config, make_service, latency_ms)
    tasks = [
        asyncio.create_task(service.engine.submit_signal(resting(f"gk-{i}", i))) for i in range(N)
    ]
    await _staged(service, tasks)
    for _ in range(turns):  # 0: before the commit; later: with it, or with submits on the wire
        await asyncio.sleep(0)
    report = await service.kill("drill", by="test")
    answers = await asyncio.wait_for(asyncio.gather(*tasks), 30)

    assert await broker.open_orders() == [], report
    assert service.open_orders() == []
    assert service.engine.sender.in_flight == 0
    sent = set(broker.submit_counts)
    for answer in answers:
        decision = json.loads(answer.decision_json)
        codes = [r["code"] for r in decision["reasons"]]
        order = decision.get("order")
        if decision["decision"] == "blocked":
            assert codes and codes[0] == "halted", decision
            assert order is None or order["client_order_id"] not in sent, decision
        else:
            assert decision["decision"] == "accepted", decision
            assert order is not None
            assert order["client_order_id"] in sent
            if codes:  # it came back after the halt: cancelled at once (or final)
                assert codes == ["halted"] and order["status"] != "accepted", decision
            at_broker = await broker.get_order(order["client_order_id"])
            assert at_broker is not None and not at_broker.is_open, at_broker
    if turns == 0:  # the kill halted before the group committed: nothing went at all
        assert sent == set(), sent
    assert all(count == 1 for count in broker.submit_counts.values()), broker.submit_counts


@pytest.mark.parametrize("turns", [0, 1, 2])
async def test_a_halt_before_the_intent_commit_completes_sends_nothing(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    turns: int,
) -> None:
    service, broker = await _service(make_config, make_service, 0)
    tasks = [
        asyncio.create_task(service.engine.submit_signal(resting(f"gh-{i}", i))) for i in range(N)
    ]
    await _staged(service, tasks)
    # The commit runs on the next turn; the waiting signals resume on the one after: a halt in
    # either gap must stop them at the last gate.
    for _ in range(turns):
        if not service.journal._tx._waiters:
            break
        await asyncio.sleep(0)
    pending = [t for t in tasks if not t.done()]
    service.halt.halt("drill", HaltTrigger.MANUAL, by="test")
    answers = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    # Orders that had left before the halt are cancelled at once; none sent after it.
    assert await broker.open_orders() == []
    sent = set(broker.submit_counts)
    if turns <= 1:
        assert sent == set(), sent
    for answer in answers:
        decision = json.loads(answer.decision_json)
        if decision["decision"] == "blocked":
            assert decision["reasons"][0]["code"] == "halted"
            assert decision.get("order") is None or (
                decision["order"]["client_order_id"] not in sent
            )
    assert pending  # the halt landed while signals were still pending


async def test_a_signal_cancelled_while_its_submit_waits_for_the_brokers_shared_commit(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """asyncio.CancelledError while the order is at the broker and its answer awaits the
    simulated broker's shared state commit: the order is not lost to the gateway (the broker's
    event puts it in the book), the same signal sent again never sends a second order, and the
    kill switch cancels it."""
    from gateway.store.schema import JournalUnavailable

    service, broker = await _service(make_config, make_service, 0)
    task = asyncio.create_task(service.engine.submit_signal(resting("cx-1", 0)))
    for _ in range(50):
        await asyncio.sleep(0)
        if broker.submit_counts:
            break
    assert service.engine.sender.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service.engine.sender.in_flight == 0
    for _ in range(100):
        if service.open_orders():
            break
        await asyncio.sleep(0.01)
    coid = next(iter(broker.submit_counts))
    assert [o.client_order_id for o in service.open_orders()] == [coid]
    with pytest.raises(JournalUnavailable):  # intent without a decision: settled at restart
        await service.engine.submit_signal(resting("cx-1", 0))
    assert dict(broker.submit_counts) == {coid: 1}
    await service.kill("drill", by="test")
    assert await broker.open_orders() == []
