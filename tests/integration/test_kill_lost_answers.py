"""The kill switch against submits whose answers are lost: what it reports is what it left.

Submits are on the wire (latency) when the kill fires; they land after its cancel_all, and
their answers are lost while look-ups fail. The broker's own events tell the gateway the orders
rest. The kill must cancel them and count them, and what it cannot settle it hands on, so that
an order found open later is cancelled then: never left resting after a kill."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brokers.base import OrderRequest
from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.pipeline.settle import UnknownOrders
from gateway.safety.halt import HaltManager, HaltStateStore
from gateway.safety.killswitch import InFlightOutcome, KillSwitch
from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def _until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def _resting(signal_id: str) -> dict[str, Any]:
    return signal(signal_id, quantity=1, order_type="limit", limit_price=190, time_in_force="gtc")


async def test_orders_landing_after_the_cancel_all_with_lost_answers_are_cancelled_and_counted(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService = await make_service(make_config())
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_faults(Faults(latency_ms=1000))
    async with api_client(service) as client:
        sending = [
            asyncio.create_task(client.post("/v1/signals", json=_resting(f"w-{n}")))
            for n in range(3)
        ]
        await _until(lambda: service.engine.sender.in_flight == 3)
        # The broker speeds up for what comes next (the kill's cancel_all lands before the
        # submits), their answers will be lost, and look-ups fail for a while.
        broker.set_faults(Faults(lose_submit_answers=3, fail_lookups_s=3))
        report = await service.kill("drill", by="test")
        decisions = [(await answer).json() for answer in sending]
    assert {d["order"]["status"] for d in decisions} == {"pending_submit"}
    assert report["failed"] == [], report["failed"]
    assert report["cancelled"] == 3
    broker.set_faults(Faults())
    await _until(lambda: not service.engine.unknown.pending)
    assert [o.status.value for o in await broker.open_orders()] == []
    assert service.engine.book.orders == {}


async def test_an_order_the_kill_could_not_settle_is_cancelled_once_found() -> None:
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)})
    await broker.connect()
    request = OrderRequest(
        client_order_id="gw-late",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=190,
        time_in_force="gtc",
    )
    found = await broker.submit(request)  # it rests; the gateway does not know it yet
    applied: list[str] = []
    unknown = UnknownOrders(
        broker, apply_order=lambda o: applied.append(o.status.value), absent=lambda c, w: None
    )
    unknown.add(request)
    unknown.cancel_when_found("gw-late")  # what a kill hands on
    assert unknown.settle(found)  # an event (or a look-up) finds it open
    await _until(lambda: applied == ["canceled"])
    assert await broker.open_orders() == []
    await broker.close()


async def test_the_kill_hands_on_what_it_could_not_settle(tmp_path: Path) -> None:
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)})
    await broker.connect()
    broker.set_faults(Faults(fail_lookups_s=60))
    handed_on: list[str] = []

    async def one_still_on_the_wire(timeout_s: float) -> tuple[list[InFlightOutcome], list[str]]:
        return [], ["gw-on-the-wire"]

    killswitch = KillSwitch(
        halt=HaltManager(HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=300),
        broker=broker,
        on_order=lambda order: None,
        open_orders=list,
        flatten_positions=False,
        cancel_retries=1,
        in_flight=one_still_on_the_wire,
        unknown_orders=lambda: ["gw-unknown"],
        cancel_when_found=handed_on.append,
    )
    report = await killswitch.kill("drill", by="test")
    assert set(report.failed) == {"gw-on-the-wire", "gw-unknown"}
    assert sorted(handed_on) == ["gw-on-the-wire", "gw-unknown"]
    await broker.close()
