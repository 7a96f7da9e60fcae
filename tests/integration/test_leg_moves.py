"""Moving a bracket's stop with PATCH: closer is always allowed, away is risk re-checked like a
new signal's, and it never crosses the market; the broker holds the moved stop."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def protected(service: GatewayService, client: httpx.AsyncClient) -> str:
    body = signal("lm-1", quantity=10, stop_loss_price=190)
    decision = (await client.post("/v1/signals", json=body)).json()
    assert decision["decision"] == "accepted", decision
    stop: str = decision["order"]["legs"][0]["client_order_id"]
    for _ in range(200):
        tracked = service.engine.book.orders.get(stop)
        if tracked is not None and tracked.order.status.value == "accepted":
            return stop
        await asyncio.sleep(0.01)
    raise AssertionError("the stop never came to work")


def stops(service: GatewayService) -> list[float]:
    rows = service.engine.book.protection(
        service.quotes.marks(), service.config.risk.risk_management.stop_loss_percent
    )
    return [float(p) for row in rows for p in row.stop_prices]


async def test_a_stop_moved_closer_is_held_by_the_broker_and_lowers_the_risk(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    stop = await protected(service, client)
    heat_before = service.engine.measures().portfolio_heat
    moved = (
        await client.patch(f"/v1/orders/{stop}", json={"signal_id": "lm-2", "stop_price": 195})
    ).json()
    assert moved["decision"] == "accepted", moved
    at_broker = await service.broker.get_order(stop)
    assert at_broker is not None and float(at_broker.stop_price or 0) == 195.0
    assert stops(service) == [195.0]
    assert service.engine.measures().portfolio_heat < heat_before


async def test_a_stop_moved_away_past_a_limit_is_refused_and_stays(
    make_config: Any, make_service: Any
) -> None:
    # 10 shares to a stop at 190 risk 100 (0.1%); to 150 they would risk 500 (0.5%).
    config = make_config(risk={"risk_management": {"max_single_position_risk": 0.004}})
    service = await make_service(config)
    async with api_client(service) as client:
        stop = await protected(service, client)
        away = {"signal_id": "lm-3", "stop_price": 150}
        refused = (await client.patch(f"/v1/orders/{stop}", json=away)).json()
        assert refused["decision"] == "rejected"
        assert [r["code"] for r in refused["reasons"]] == ["position_risk"]
        at_broker = await service.broker.get_order(stop)
        assert at_broker is not None and float(at_broker.stop_price or 0) == 190.0
        assert stops(service) == [190.0]
        near = (
            await client.patch(f"/v1/orders/{stop}", json={"signal_id": "lm-4", "stop_price": 170})
        ).json()
        assert near["decision"] == "accepted", near  # 300 at risk: 0.3%


async def test_a_stop_cannot_cross_the_market_and_a_halt_blocks_a_move(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    stop = await protected(service, client)
    crossed = (
        await client.patch(f"/v1/orders/{stop}", json={"signal_id": "lm-5", "stop_price": 200})
    ).json()
    assert [r["code"] for r in crossed["reasons"]] == ["protective_price_invalid"]
    at_bid = {"signal_id": "lm-7", "stop_price": 199.95}  # at the bid: it would fire now
    refused = (await client.patch(f"/v1/orders/{stop}", json=at_bid)).json()
    assert [r["code"] for r in refused["reasons"]] == ["protective_price_invalid"]
    inside = {"signal_id": "lm-8", "stop_price": 199.94}
    assert (await client.patch(f"/v1/orders/{stop}", json=inside)).json()["decision"] == "accepted"
    await client.post("/v1/halt", json={"reason": "drill"})
    blocked = (
        await client.patch(f"/v1/orders/{stop}", json={"signal_id": "lm-6", "stop_price": 195})
    ).json()
    assert blocked["decision"] == "blocked"
    assert stops(service) == [199.94]
