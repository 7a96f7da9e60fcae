"""A bracket across a restart: its legs come back as legs (held or working, as the broker has
them), the position stays protected, and reconciliation finds nothing to adopt or lose."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import api_client, signal


async def test_a_protected_position_is_still_protected_after_a_restart(
    make_config: Any, make_service: Any
) -> None:
    config = make_config()
    first = await make_service(config)
    async with api_client(first) as client:
        body = signal("rs-1", quantity=10, stop_loss_price=190, take_profit_price=220)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
    slp = config.risk.risk_management.stop_loss_percent
    for _ in range(200):
        rows = first.engine.book.protection(first.quotes.marks(), slp)
        if rows and rows[0].protected_qty == 10:
            break
        await asyncio.sleep(0.01)
    await first.stop()

    second = await make_service(config)
    book = second.engine.book
    assert book.legs == {entry + "-sl": "stop_loss", entry + "-tp": "take_profit"}
    rows = book.protection(second.quotes.marks(), slp)
    assert [(r.symbol, r.protected_qty, r.stop_prices) for r in rows] == [("AAPL", 10, [190])]
    last = second.reconciler.last
    assert last is not None and last.adopted == [] and last.lost == []
    # Heat counts the stop's distance, not 3% of the position.
    heat = second.engine.measures().portfolio_heat
    assert abs(float(heat) - 10 * (200.0 - 190.0) / float(second.engine.equity())) < 1e-6


async def test_at_a_restart_the_brackets_are_named_to_the_broker_before_its_open_orders(
    make_config: Any, make_service: Any
) -> None:
    # Alpaca names a bracket's legs itself: the gateway must tell it which journaled ids are
    # which (adopt_bracket) before it reads the open orders, or its stops look like strangers.
    config = make_config()
    first = await make_service(config)
    async with api_client(first) as client:
        body = signal("rs-2", quantity=5, stop_loss_price=190, take_profit_price=220)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
    await first.stop()

    from brokers.simulated import SimulatedBroker

    calls: list[str] = []
    adopt, open_orders = SimulatedBroker.adopt_bracket, SimulatedBroker.open_orders

    async def adopting(self: SimulatedBroker, *ids: str | None) -> Any:
        calls.append(f"adopt {ids}")
        return await adopt(self, *ids)  # type: ignore[arg-type]

    async def listing(self: SimulatedBroker) -> Any:
        calls.append("open_orders")
        return await open_orders(self)

    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SimulatedBroker, "adopt_bracket", adopting)
        patch.setattr(SimulatedBroker, "open_orders", listing)
        await make_service(config)
    assert calls[0] == f"adopt {(entry, entry + '-sl', entry + '-tp')}"
    assert "open_orders" in calls[1:]
