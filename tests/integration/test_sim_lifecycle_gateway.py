"""The gateway on a simulated broker that fills piece by piece (``fill_quantity_per_tick``): each
partial fill reaches the book once, the position ends at the order's quantity and agrees with
the broker's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal


async def _settled(service: GatewayService, qty: int) -> None:
    for _ in range(200):
        if service.engine.book.position_qty("AAPL") == qty:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"position {service.engine.book.position_qty('AAPL')}, not {qty}")


async def test_partial_fills_reach_the_book_once_each(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    # No ticks during the test: only the quotes it posts fill the order.
    sim = {"fill_quantity_per_tick": 4, "tick_s": 3600}
    config = make_config(gateway={"brokers": {"simulated": sim}})
    service: GatewayService = await make_service(config)
    resting = signal("rest", order_type="limit", limit_price=199, time_in_force="gtc")
    async with api_client(service) as client:
        order = (await client.post("/v1/signals", json=resting)).json()["order"]
        assert order["status"] == "accepted"
    async with api_client(service, ADMIN_TOKEN) as admin:
        seen = []
        for _ in range(4):  # one quote more than the order needs
            answer = await admin.post(
                "/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 198.9, "ask": 199.0}]
            )
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.05)  # the stream delivers the fill events too
            seen.append(service.engine.book.position_qty("AAPL"))
    assert seen == [4, 8, 10, 10]
    await _settled(service, 10)
    reconciliation = service.status()["reconciliation"]
    assert reconciliation["positions"] == [], reconciliation
    assert service.engine.book.position_qty("AAPL") == Decimal(10)
