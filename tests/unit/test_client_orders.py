"""The client's order methods speak DESIGN's routes (GET/DELETE/PATCH /v1/orders/{id}, GET
/v1/orders with filters): method, path, query and body on the wire, typed answers, and the
gateway's refusals as GatewayClientError with their code."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.client import AsyncGatewayClient, GatewayClient, GatewayClientError

ORDER: dict[str, Any] = {
    "client_order_id": "gw-1/x",
    "broker_order_id": "sim-1",
    "symbol": "AAPL",
    "side": "buy",
    "quantity": 5,
    "filled_quantity": 0,
    "status": "accepted",
    "limit_price": 190.5,
    "order_type": "limit",
    "strategy": "momentum",
    "signal_id": "s-1",
    "created_at": "2026-12-01T00:00:00+00:00",
    "updated_at": "2026-12-01T00:00:01+00:00",
}
DECISION: dict[str, Any] = {"signal_id": "r-1", "decision": "accepted", "reasons": []}


def gateway(seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/unknown"):
            return httpx.Response(404, json={"code": "order_not_found", "message": "unknown"})
        if request.method == "PATCH":
            return httpx.Response(200, json=DECISION)
        if path == "/v1/orders":
            return httpx.Response(200, json=[ORDER])
        return httpx.Response(
            200, json={**ORDER, "status": "canceled"} if request.method == "DELETE" else ORDER
        )

    return httpx.MockTransport(answer)


async def test_the_async_client_speaks_the_routes() -> None:
    seen: list[httpx.Request] = []
    async with AsyncGatewayClient("http://gw", "t", transport=gateway(seen)) as gw:
        assert (await gw.order("gw-1/x")).limit_price == 190.5
        [listed] = await gw.orders(status="all", strategy="momentum", symbol="AAPL")
        assert listed.strategy == "momentum"
        assert (await gw.cancel("gw-1/x")).status == "canceled"
        decision = await gw.replace("gw-1/x", "r-1", limit_price=Decimal("191.25"), quantity=4)
        assert decision.decision == "accepted"
        with pytest.raises(GatewayClientError) as info:
            await gw.cancel("unknown")
        assert info.value.status_code == 404 and info.value.code == "order_not_found"
    lines = [(r.method, r.url.raw_path.decode()) for r in seen]
    assert lines == [
        ("GET", "/v1/orders/gw-1%2Fx"),
        ("GET", "/v1/orders?status=all&strategy=momentum&symbol=AAPL"),
        ("DELETE", "/v1/orders/gw-1%2Fx"),
        ("PATCH", "/v1/orders/gw-1%2Fx"),
        ("DELETE", "/v1/orders/unknown"),
    ]
    assert json.loads(seen[3].content) == {
        "signal_id": "r-1",
        "quantity": 4,
        "limit_price": "191.25",
    }
    assert all(r.headers["authorization"] == "Bearer t" for r in seen)


def test_the_sync_client_speaks_the_same_routes() -> None:
    seen: list[httpx.Request] = []
    with GatewayClient("http://gw", "t", transport=gateway(seen)) as gw:
        assert gw.order("gw-1/x").client_order_id == "gw-1/x"
        assert [o.symbol for o in gw.orders()] == ["AAPL"]
        assert gw.cancel("gw-1/x").status == "canceled"
        assert gw.replace("gw-1/x", "r-2", stop_price=180).signal_id == "r-1"
    assert [(r.method, r.url.raw_path.decode()) for r in seen] == [
        ("GET", "/v1/orders/gw-1%2Fx"),
        ("GET", "/v1/orders"),
        ("DELETE", "/v1/orders/gw-1%2Fx"),
        ("PATCH", "/v1/orders/gw-1%2Fx"),
    ]
    assert json.loads(seen[3].content) == {"signal_id": "r-2", "stop_price": 180}
