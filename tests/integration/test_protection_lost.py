"""A position left without its stop is never silent: an alert and a journal event, and with
protective_stop: required a halt (trigger protection_lost)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def protected_entry(service: GatewayService) -> str:
    async with api_client(service) as client:
        body = signal("pl-1", quantity=10, stop_loss_price=190)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted"
    entry: str = decision["order"]["client_order_id"]
    for _ in range(200):
        if (
            service.engine.book.protection(
                service.quotes.marks(), service.config.risk.risk_management.stop_loss_percent
            )[0].protected_qty
            == 10
        ):
            return entry
        await asyncio.sleep(0.01)
    raise AssertionError("the stop never came to work")


async def drop_stop_at_the_broker(service: GatewayService, entry: str) -> None:
    await service.broker.cancel(entry + "-sl")  # the broker lost it: not the gateway's doing
    for _ in range(200):
        if entry + "-sl" not in service.engine.book.orders:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the leg's cancel never arrived")


async def test_a_lost_stop_is_an_alert_and_an_event_once(service: GatewayService) -> None:
    entry = await protected_entry(service)
    assert service.protection.check() == []
    await drop_stop_at_the_broker(service, entry)
    assert service.protection.check() == ["AAPL"]
    assert service.protection.check() == []  # once per episode
    events = service.journal.events("protection_lost")
    assert [e["symbol"] for e in events] == ["AAPL"] and events[0]["protected_qty"] == 0
    assert service.halt.current is None  # protective_stop none: no halt


async def test_with_required_protection_a_lost_stop_halts(
    make_config: Any, make_service: Any
) -> None:
    config = make_config(risk={"risk_management": {"protective_stop": "required"}})
    service = await make_service(config)
    entry = await protected_entry(service)
    await drop_stop_at_the_broker(service, entry)
    await service.risk_sweep()  # the sweep looks, as the scheduler runs it
    current = service.halt.current
    assert current is not None and current.trigger.value == "protection_lost"
    assert "AAPL" in current.reason


async def test_a_position_closed_with_its_stop_is_no_loss(service: GatewayService) -> None:
    entry = await protected_entry(service)
    async with api_client(service) as client:
        sold = signal("pl-2", side="sell", quantity=10)
        assert (await client.post("/v1/signals", json=sold)).json()["decision"] == "accepted"
    for _ in range(200):
        if entry + "-sl" not in service.engine.book.orders:
            break
        await asyncio.sleep(0.01)
    assert service.protection.check() == []
    assert service.journal.events("protection_lost") == []
