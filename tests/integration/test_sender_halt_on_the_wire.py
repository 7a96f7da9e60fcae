"""A halt that begins while a signal is being decided or its order is on the wire.

The order must not rest at the broker: the last gate (after the intent is committed) stops one
not yet sent, and one that comes back after the halt is cancelled at once. The kill switch waits
for submits on the wire and counts what became of them. Submits are held at the broker by an
event, so each step happens in a known order, with no sleeps."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from brokers.base import BrokerOrder, CancelReport, OrderRequest, Quote
from brokers.errors import OrderRejected
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.pipeline.ids import client_order_id
from gateway.safety.halt_state import HaltTrigger
from gateway.service import GatewayService


class HeldBroker(SimulatedBroker):
    """A simulated broker that can hold each submit until the test lets it through."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2, **kwargs)
        self.hold = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancel_all_done = asyncio.Event()
        self.on_quote: Callable[[], None] | None = None
        self.cancel_error: str | None = None
        self.ended_on_landing = False
        self.submits: list[str] = []
        self.cancels: list[str] = []

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        self.submits.append(order.client_order_id)
        if self.hold:
            self.entered.set()
            await self.release.wait()
        placed = await super().submit(order)
        if self.ended_on_landing:  # cancelled by hand at the broker the moment it landed
            await SimulatedBroker.cancel(self, order.client_order_id)
        return placed

    async def quote(self, symbol: str) -> Quote:
        if self.on_quote is not None:
            self.on_quote()
        return await super().quote(symbol)

    async def cancel(self, client_order_id: str) -> None:
        self.cancels.append(client_order_id)
        if self.cancel_error is not None:
            raise OrderRejected(self.cancel_error)
        await super().cancel(client_order_id)

    async def cancel_all(self) -> CancelReport:
        report = await super().cancel_all()
        self.cancel_all_done.set()
        return report


def resting(signal_id: str) -> Signal:
    return Signal(
        signal_id=signal_id,
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=190,
        time_in_force="gtc",
    )


def journal_status(service: GatewayService, client_order_id: str) -> str:
    reader = sqlite3.connect(service.config.gateway.state_dir / "journal.sqlite3")
    try:
        row = reader.execute(
            "SELECT status FROM orders WHERE client_order_id=?", (client_order_id,)
        ).fetchone()
    finally:
        reader.close()
    return str(row[0])


def journal_detail(service: GatewayService, client_order_id: str) -> str:
    reader = sqlite3.connect(service.config.gateway.state_dir / "journal.sqlite3")
    try:
        row = reader.execute(
            "SELECT detail FROM order_events WHERE client_order_id=? ORDER BY id DESC LIMIT 1",
            (client_order_id,),
        ).fetchone()
    finally:
        reader.close()
    return str(row[0])


async def started(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> tuple[GatewayService, HeldBroker]:
    broker = HeldBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    return service, broker


async def on_the_wire(service: GatewayService, broker: HeldBroker, signal: Signal) -> Any:
    broker.hold = True
    deciding = asyncio.create_task(service.engine.submit_signal(signal))
    await broker.entered.wait()
    assert service.engine.sender.in_flight == 1
    return deciding


async def test_an_order_that_comes_back_after_a_halt_is_cancelled_at_once(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service, broker = await started(make_config, make_service)
    deciding = await on_the_wire(service, broker, resting("w-1"))
    service.halt.halt("drill", HaltTrigger.MANUAL, by="test")
    broker.release.set()
    decision = json.loads((await deciding).decision_json)
    assert decision["decision"] == "accepted"
    assert decision["order"]["status"] == "canceled"
    assert [r["code"] for r in decision["reasons"]] == ["halted"]
    coid = decision["order"]["client_order_id"]
    assert broker.cancels == [coid]
    assert await broker.open_orders() == []
    assert service.open_orders() == []
    assert service.engine.sender.in_flight == 0


async def test_an_order_back_after_a_halt_whose_cancel_fails_is_said_to_rest(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service, broker = await started(make_config, make_service)
    deciding = await on_the_wire(service, broker, resting("w-1"))
    service.halt.halt("drill", HaltTrigger.MANUAL, by="test")
    broker.cancel_error = "cancel link down"
    broker.release.set()
    decision = json.loads((await deciding).decision_json)
    assert decision["order"]["status"] == "accepted"
    [reason] = decision["reasons"]
    assert reason["code"] == "halted"
    assert "cancel link down" in reason["message"]
    assert [o.client_order_id for o in service.open_orders()] == [
        decision["order"]["client_order_id"]
    ]


async def test_an_order_back_after_a_halt_that_ended_meanwhile_is_said_to_have_ended(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """Its cancel fails because something else cancelled it first: it does not rest."""
    service, broker = await started(make_config, make_service)
    deciding = await on_the_wire(service, broker, resting("w-1"))
    service.halt.halt("drill", HaltTrigger.MANUAL, by="test")
    broker.cancel_error = "already cancelled"

    broker.ended_on_landing = True
    broker.release.set()
    decision = json.loads((await deciding).decision_json)
    assert decision["order"]["status"] == "canceled"
    [reason] = decision["reasons"]
    assert reason["code"] == "halted"
    assert "canceled" in reason["message"]
    assert service.open_orders() == []


async def test_the_kill_switch_cancels_a_submit_that_lands_after_its_cancel_all(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service, broker = await started(make_config, make_service)
    deciding = await on_the_wire(service, broker, resting("w-1"))
    killing = asyncio.create_task(service.kill("drill", by="test"))
    await broker.cancel_all_done.wait()  # the halt is in force; the submit has not landed
    assert service.halt.is_halted
    broker.release.set()
    report = await killing
    decision = json.loads((await deciding).decision_json)
    assert report["cancelled"] == 1
    assert report["failed"] == []
    assert decision["order"]["status"] == "canceled"
    assert await broker.open_orders() == []


async def test_the_kill_switch_reports_a_submit_on_the_wire_it_could_not_cancel(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service, broker = await started(make_config, make_service)
    deciding = await on_the_wire(service, broker, resting("w-1"))
    killing = asyncio.create_task(service.kill("drill", by="test"))
    await broker.cancel_all_done.wait()
    broker.cancel_error = "cancel link down"
    broker.release.set()
    report = await killing
    decision = json.loads((await deciding).decision_json)
    broker_id = decision["order"]["broker_order_id"]
    assert report["cancelled"] == 0
    assert report["failed"] == [
        {"order_id": broker_id, "reason": "cancel failed: cancel link down"}
    ]


async def test_a_halt_while_the_signal_is_priced_stops_it_after_its_intent(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last gate: the intent is journaled, the order is not sent and its row says why."""
    service, broker = await started(make_config, make_service)
    assert service.quotes.get("AAPL") is None  # the first signal asks the broker for one
    broker.on_quote = lambda: service.halt.halt("risk desk", HaltTrigger.MANUAL, by="test")
    with caplog.at_level(logging.INFO, logger="gateway.pipeline.engine"):
        answer = await service.engine.submit_signal(resting("w-1"))
    decision = json.loads(answer.decision_json)
    [line] = [r for r in caplog.records if r.getMessage() == "signal blocked halted"]
    assert line.elapsed_us >= 0  # type: ignore[attr-defined]
    assert decision["decision"] == "blocked"
    [reason] = decision["reasons"]
    assert reason["code"] == "halted"
    assert "manual: risk desk" in reason["message"]
    assert decision["risk"]["equity"] == 100000.0  # what it was judged on before the halt
    assert broker.submits == []
    assert journal_status(service, client_order_id("w-1")) == "canceled"
    assert "risk desk" in journal_detail(service, client_order_id("w-1"))
    assert service.open_orders() == []
    assert service.engine.book.open_orders() == []
