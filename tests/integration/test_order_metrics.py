"""gateway_orders_total counts a status when an order reaches it, once: a fill reported by the
submit's answer and again by the broker's event is one filled order."""

from __future__ import annotations

import asyncio

import httpx

from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal


def _count(service: GatewayService, status: str) -> float:
    value = service.metrics.registry.get_sample_value("gateway_orders_total", {"status": status})
    return value or 0.0


async def _events_drained(service: GatewayService) -> None:
    for _ in range(20):  # the broker's events for what was just sent, then their journaling
        await asyncio.sleep(0)


async def test_a_filled_order_counts_once(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    await client.post("/v1/signals", json=signal("m-1"))  # a market buy fills at once
    await _events_drained(service)
    await client.post("/v1/signals", json=signal("m-2"))
    await _events_drained(service)
    assert _count(service, "filled") == 2


async def test_a_resting_order_counts_accepted_then_filled(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    resting = signal("r-1", order_type="limit", limit_price=199, quantity=1)
    assert (await client.post("/v1/signals", json=resting)).json()["order"]["status"] == "accepted"
    await _events_drained(service)
    assert (_count(service, "accepted"), _count(service, "filled")) == (1, 0)
    admin_quote = [{"symbol": "AAPL", "bid": 198.0, "ask": 198.5}]
    async with api_client(service, ADMIN_TOKEN) as admin:
        assert (await admin.post("/v1/sim/quotes", json=admin_quote)).status_code == 200
    await _events_drained(service)
    assert (_count(service, "accepted"), _count(service, "filled")) == (1, 1)
