"""A resume refused during the cooldown says when to come back twice: retry_after_s in the body
and HTTP's Retry-After header, in whole seconds rounded up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import GatewayConfig
from tests.conftest import ADMIN_TOKEN, api_client, signal


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_cooldown_refusal_carries_retry_after_rounded_up(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    clock = Clock()
    config = make_config(risk={"emergency": {"resume_cooldown_s": 300}})
    service = await make_service(config, clock=clock)
    async with api_client(service, ADMIN_TOKEN) as admin:
        assert (await admin.post("/v1/halt", json={"reason": "drill"})).status_code == 200
        clock.now += timedelta(seconds=0.7)
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409
        assert refused.json()["code"] == "cooldown_active"
        assert refused.json()["retry_after_s"] == 299.3
        assert refused.headers["Retry-After"] == "300"
        clock.now += timedelta(seconds=298.8)  # 0.5 s left: still a whole second to wait
        refused = await admin.post("/v1/resume", json={})
        assert refused.json()["retry_after_s"] == 0.5
        assert refused.headers["Retry-After"] == "1"
        clock.now += timedelta(seconds=0.5)
        resumed = await admin.post("/v1/resume", json={})
        assert resumed.status_code == 200 and "Retry-After" not in resumed.headers


async def test_a_refusal_for_an_active_trigger_has_no_retry_after(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    # No time to wait: the measure has to come back under its threshold first.
    config = make_config(
        gateway={"brokers": {"simulated": {"initial_cash": 100000, "margin_multiplier": 4}}},
        risk={
            "risk_management": {"max_single_position_risk": 0.19, "max_portfolio_heat": 0.39},
            "emergency": {"resume_cooldown_s": 0},
        },
    )
    service = await make_service(config)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        bought = await client.post("/v1/signals", json=signal("lev", quantity=1000))
        assert bought.json()["decision"] == "accepted"
        await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 182, "ask": 182.02}])
        assert (await client.get("/v1/status")).json()["state"] == "halted"
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409 and refused.json()["code"] == "trigger_active"
        assert "retry_after_s" not in refused.json()
        assert "Retry-After" not in refused.headers
