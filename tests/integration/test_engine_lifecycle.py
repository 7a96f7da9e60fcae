"""The engine is ready only between a completed start and the beginning of its stop: before,
signals are refused as starting; after, as shutting down. Its long-lived tasks have names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import TEST_ENV, api_client, signal


async def test_signals_are_refused_until_the_start_completes_and_once_the_stop_begins(
    make_config: Callable[..., GatewayConfig],
) -> None:
    service = GatewayService(make_config(), environ=TEST_ENV)
    async with api_client(service) as client:
        assert (await client.get("/readyz")).status_code == 503
        early = await client.post("/v1/signals", json=signal("early"))
        assert early.status_code == 503
        assert "starting" in early.text
        await service.start()
        try:
            assert (await client.get("/readyz")).status_code == 200
            names = {task.get_name() for task in asyncio.all_tasks()}
            assert {"broker-events", "unknown-orders"} <= names
            accepted = await client.post("/v1/signals", json=signal("on-time"))
            assert accepted.json()["decision"] == "accepted"
        finally:
            await service.stop()
        assert (await client.get("/readyz")).status_code == 503
        late = await client.post("/v1/signals", json=signal("late"))
        assert late.status_code == 503
        assert "shutting down" in late.text
    assert service.engine.sender.stopping
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not {"broker-events", "unknown-orders"} & names


async def test_the_metrics_show_the_broker_link_and_the_state_from_the_start(
    make_config: Callable[..., GatewayConfig],
) -> None:
    service = GatewayService(make_config(), environ=TEST_ENV)
    await service.start()
    try:
        async with api_client(service) as client:
            text = (await client.get("/metrics")).text
    finally:
        await service.stop()
    assert "gateway_broker_connected 1.0" in text
    assert 'gateway_state_current{state="active"} 1.0' in text
