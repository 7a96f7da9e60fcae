"""Orders of unknown fate: a submit whose answer was lost and that no look-up settled.

They are asked after until the broker answers: found, their state is applied; absent, they
never reached the market and are journaled rejected. A restart whose look-up fails leaves them
unknown too, never rejected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderRequest
from brokers.errors import BrokerUnavailable
from brokers.simulated import SimulatedBroker
from brokers.simulated.faults import Faults
from gateway.config import GatewayConfig
from gateway.models import Decision
from gateway.pipeline.settle import UnknownOrders
from gateway.store.journal import Journal


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _request(coid: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side="buy",
        quantity=5,
        order_type="limit",
        limit_price=190,
        time_in_force="gtc",
    )


async def test_a_landed_order_is_found_once_the_look_ups_answer() -> None:
    clock = Clock()
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, clock=clock)
    await broker.connect()
    broker.set_faults(Faults(lose_submit_answers=1, fail_lookups_s=10))
    with pytest.raises(BrokerUnavailable):
        await broker.submit(_request("gw-a"))  # it landed; its answer did not
    applied: list[BrokerOrder] = []
    absent: list[str] = []
    unknown = UnknownOrders(
        broker, apply_order=applied.append, absent=lambda coid, why: absent.append(coid)
    )
    unknown.add(_request("gw-a"))
    await unknown.look_up_all()
    assert unknown.pending == ["gw-a"] and applied == []  # the look-up failed: still unknown
    clock.now += timedelta(seconds=11)
    await unknown.look_up_all()
    assert unknown.pending == [] and absent == []
    assert [(o.client_order_id, o.status.value) for o in applied] == [("gw-a", "accepted")]
    await broker.close()


async def test_an_order_the_broker_never_got_is_settled_absent() -> None:
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)})
    await broker.connect()
    absent: list[tuple[str, str]] = []
    unknown = UnknownOrders(
        broker, apply_order=lambda order: None, absent=lambda c, why: absent.append((c, why))
    )
    unknown.add(_request("gw-b"))
    await unknown.look_up_all()
    assert unknown.pending == []
    assert absent and absent[0][0] == "gw-b" and "never reached the market" in absent[0][1]
    await broker.close()


async def test_the_settling_loop_asks_again_until_the_broker_answers() -> None:
    clock = Clock()
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, clock=clock)
    await broker.connect()
    broker.set_faults(Faults(fail_lookups_s=3600))
    settled = asyncio.Event()
    unknown = UnknownOrders(
        broker,
        apply_order=lambda order: None,
        absent=lambda c, why: settled.set(),
        first_wait_s=0.01,
        max_wait_s=0.05,
    )
    loop = asyncio.create_task(unknown.run())
    unknown.add(_request("gw-c"))
    await asyncio.sleep(0.2)  # several rounds fail
    assert unknown.pending == ["gw-c"]
    broker.set_faults(Faults())
    await asyncio.wait_for(settled.wait(), timeout=10)
    loop.cancel()
    await broker.close()


class LookupsFail(SimulatedBroker):
    """A broker whose order look-ups by client_order_id fail while ``failing`` (its order list
    still answers, so the start's reconciliation runs)."""

    failing = True

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if self.failing:
            raise BrokerUnavailable("look-up timed out")
        return await super().get_order(client_order_id)


async def test_a_restart_whose_look_up_fails_leaves_the_intent_unknown_not_rejected(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    state_dir: Path = config.gateway.state_dir
    journal = Journal(state_dir / "journal.sqlite3")  # a crash between intent and answer
    journal.commit_now(
        journal.record_intent(
            signal_id="crashed",
            body_hash="h",
            body='{"signal_id":"crashed"}',
            strategy="momentum",
            symbol="AAPL",
            order=_request("gw-crashed"),
            valued_at="190",
        )
    )
    journal.close()
    broker = LookupsFail(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
    service = await make_service(config, broker=broker)
    stored = service.journal.signal("crashed")
    assert stored is not None and stored.decision is not None
    decision = Decision.model_validate_json(stored.decision)
    assert decision.decision.value == "accepted"
    assert decision.order is not None and decision.order.status == "pending_submit"
    assert [r.code.value for r in decision.reasons] == ["broker_answer_unknown"]
    assert service.engine.unknown.pending == ["gw-crashed"]
    assert "gw-crashed" in service.engine.book.reservations  # its exposure stays counted
    # The body could not be read back: the gateway says so and starts halted.
    assert service.halt.current is not None
    assert service.halt.current.trigger.value == "state_unreadable"
    assert "crashed" in service.halt.current.reason
    broker.failing = False  # the broker answers again: the order never reached the market
    await service.engine.unknown.look_up_all()
    assert service.engine.unknown.pending == []
    assert "gw-crashed" not in service.engine.book.reservations
    assert [o.status for o in service.journal.orders()] == ["rejected"]


class SubmitBlowsUp(SimulatedBroker):
    """An adapter that fails in a way it does not translate, after the order left."""

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        await super().submit(order)
        raise RuntimeError("adapter bug after sending")


async def test_an_adapter_error_it_did_not_translate_leaves_the_order_unknown_not_a_500(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    from tests.conftest import api_client, signal

    broker = SubmitBlowsUp(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
    service = await make_service(make_config(), broker=broker)
    async with api_client(service) as client:
        answer = await client.post(
            "/v1/signals", json=signal("oops", order_type="limit", limit_price=190, quantity=1)
        )
    assert answer.status_code == 200
    decision = answer.json()
    assert decision["decision"] == "accepted"
    assert [r["code"] for r in decision["reasons"]] == ["broker_answer_unknown"]
    assert list(broker.submit_counts.values()) == [1]  # not sent again
