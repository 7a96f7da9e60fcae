"""The strategy client against the real app (ASGI transport, no sockets)."""

from __future__ import annotations

import httpx
import pytest

from gateway.client import AsyncGatewayClient, GatewayClientError
from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN


def client_for(service: GatewayService) -> AsyncGatewayClient:
    app = create_app(service, Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN))
    return AsyncGatewayClient(
        "http://gateway", STRATEGY_TOKEN, transport=httpx.ASGITransport(app=app)
    )


class FeedDown(Exception):
    pass


async def test_submit_and_status(service: GatewayService) -> None:
    async with client_for(service) as gw:
        decision = await gw.submit("cl-1", "momentum", "AAPL", "buy", 5)
        assert decision.decision == "accepted"
        assert decision.order is not None and decision.order.quantity == 5
        assert (await gw.status())["state"] == "active"


async def test_guard_reports_failures_and_successes(service: GatewayService) -> None:
    async with client_for(service) as gw:
        for _ in range(2):
            with pytest.raises(FeedDown):
                async with gw.guard("meanrev", "MSFT", failure_type="data_error"):
                    raise FeedDown("vendor timed out")
        assert service.failures.consecutive_for("meanrev") == 2
        assert service.failures.status()["by_type"] == {"data_error": 2}
        async with gw.guard("meanrev", "MSFT"):
            pass  # a clean run is a success: the streak ends
        assert service.failures.consecutive_for("meanrev") == 0
        for _ in range(3):
            async with gw.guard("meanrev", "MSFT", suppress=True):
                raise FeedDown("vendor timed out")  # reported, then swallowed: returns None
        status = await gw.status()
        assert status["state"] == "halted"
        assert status["halt"]["trigger"] == "technical_failure"


async def test_refusals_raise_with_the_body(service: GatewayService) -> None:
    async with client_for(service) as gw:
        await gw.submit("cl-dup", "momentum", "AAPL", "buy", 1)
        with pytest.raises(GatewayClientError) as info:
            await gw.submit("cl-dup", "momentum", "AAPL", "buy", 2)
        assert info.value.status_code == 409
        with pytest.raises(GatewayClientError) as info:
            await gw.submit("cl-bad", "momentum", "AAPL", "buy", -1)
        assert info.value.status_code == 422
