"""The signal path through the real API, service, engine, journal and simulated broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal


async def test_accepted_signal_is_priced_at_the_ask(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/signals", json=signal("s-1", quantity=10))
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == "accepted"
    assert body["reasons"] == []
    order = body["order"]
    assert order["price"] == 200.05  # market buy priced at the ask, a JSON number
    assert order["notional"] == 2000.5
    assert order["status"] == "filled"
    assert order["client_order_id"].startswith("gw-")
    assert isinstance(order["broker_order_id"], str)
    assert order["quote_time"] is not None
    assert body["risk"]["equity"] == 100000.0
    assert body["risk"]["heat_after"] > body["risk"]["heat_before"]


async def test_market_sell_is_priced_at_the_bid(client: httpx.AsyncClient) -> None:
    await client.post("/v1/signals", json=signal("b", quantity=10))
    body = (await client.post("/v1/signals", json=signal("s", side="sell", quantity=5))).json()
    assert body["decision"] == "accepted"
    assert body["order"]["price"] == 199.95


async def test_position_and_orders_visible(client: httpx.AsyncClient) -> None:
    await client.post("/v1/signals", json=signal("p-1", quantity=10))
    positions = (await client.get("/v1/positions")).json()
    assert positions == [
        {"symbol": "AAPL", "qty": 10.0, "avg_price": 200.05, "market_price": 200.0}
    ]
    limit = signal("p-2", order_type="limit", limit_price=190, quantity=5)
    assert (await client.post("/v1/signals", json=limit)).json()["order"]["status"] == "accepted"
    open_orders = (await client.get("/v1/orders")).json()
    assert [o["status"] for o in open_orders] == ["accepted"]
    every = (await client.get("/v1/orders", params={"status": "all"})).json()
    assert sorted(o["status"] for o in every) == ["accepted", "filled"]


async def test_stale_quote_is_refused(service: GatewayService, client: httpx.AsyncClient) -> None:
    async with api_client(service, ADMIN_TOKEN) as admin:
        old = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
        moved = await admin.post(
            "/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 200, "ask": 200.1, "ts": old}]
        )
        assert moved.status_code == 200
    body = (await client.post("/v1/signals", json=signal("stale-1"))).json()
    assert body["decision"] == "rejected"
    assert [r["code"] for r in body["reasons"]] == ["quote_stale"]
    assert body["order"] is None
    # The ticker does not refresh a quote pushed with an explicit timestamp.
    await asyncio.sleep(0.3)
    body = (await client.post("/v1/signals", json=signal("stale-2"))).json()
    assert [r["code"] for r in body["reasons"]] == ["quote_stale"]


async def test_missing_crossed_and_wide_quotes(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    body = (await client.post("/v1/signals", json=signal("m-1", symbol="TSLA"))).json()
    assert [r["code"] for r in body["reasons"]] == ["quote_missing"]
    async with api_client(service, ADMIN_TOKEN) as admin:
        await admin.post("/v1/sim/quotes", json=[{"symbol": "MSFT", "bid": 411, "ask": 410}])
        await admin.post("/v1/sim/quotes", json=[{"symbol": "SPY", "bid": 580, "ask": 600}])
    crossed = (await client.post("/v1/signals", json=signal("m-2", symbol="MSFT"))).json()
    assert [r["code"] for r in crossed["reasons"]] == ["quote_invalid"]
    wide = (await client.post("/v1/signals", json=signal("m-3", symbol="SPY"))).json()
    assert [r["code"] for r in wide["reasons"]] == ["quote_invalid"]


async def test_oversized_signal_lists_every_failed_check(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/signals", json=signal("big-1", quantity=200000))).json()
    assert body["decision"] == "rejected"
    codes = {r["code"] for r in body["reasons"]}
    assert {
        "max_order_quantity",
        "max_order_notional",
        "buying_power",
        "position_risk",
        "portfolio_heat",
    } <= codes


async def test_position_risk_limit(client: httpx.AsyncClient) -> None:
    # 2% risk at a 3% stop on 100k equity allows 66,666.67 of exposure: 334 shares at 200.05 is over.
    body = (await client.post("/v1/signals", json=signal("pr-1", quantity=334))).json()
    assert [r["code"] for r in body["reasons"]] == ["position_risk"]
    ok = (await client.post("/v1/signals", json=signal("pr-2", quantity=333))).json()
    assert ok["decision"] == "accepted"


async def test_price_collar_refuses_limits_reaching_through(client: httpx.AsyncClient) -> None:
    far = signal("c-1", order_type="limit", limit_price=215, quantity=1)
    body = (await client.post("/v1/signals", json=far)).json()
    assert [r["code"] for r in body["reasons"]] == ["price_collar"]
    passive = signal("c-2", order_type="limit", limit_price=150, quantity=1)
    assert (await client.post("/v1/signals", json=passive)).json()["decision"] == "accepted"


async def test_unknown_field_and_bad_values_are_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    cases = [
        (signal("u-1", colour="red"), "colour"),
        (signal("u-2", quantity=-1), "quantity"),
        (signal("u-3", quantity="NaN"), "quantity"),
        (signal("u-4", quantity=0), "quantity"),
        (signal("u-5", order_type="limit"), "limit_price"),
        (signal("u-6", limit_price=100), "limit_price"),
        (signal("u 7"), "signal_id"),
        (signal("u-8", symbol="AAPL;DROP"), "symbol"),
        (signal("u-9", side="short"), "side"),
    ]
    for body, field in cases:
        response = await client.post("/v1/signals", json=body)
        assert response.status_code == 422, body
        fields = [e["field"] for e in response.json()["errors"]]
        assert field in fields, (field, response.json())
    # Nothing was journaled or sent.
    assert (await client.get("/v1/orders", params={"status": "all"})).json() == []


async def test_malformed_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/signals", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = await client.post("/v1/signals", json=[1, 2, 3])
    assert response.status_code == 422


async def test_replay_returns_the_first_decision_exactly(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/signals", json=signal("r-1"))
    again = await client.post("/v1/signals", json=signal("r-1"))
    assert again.content == first.content
    orders = (await client.get("/v1/orders", params={"status": "all"})).json()
    assert len(orders) == 1
    conflict = await client.post("/v1/signals", json=signal("r-1", quantity=11))
    assert conflict.status_code == 409


async def test_concurrent_duplicates_make_one_order(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(
        *(client.post("/v1/signals", json=signal("dup")) for _ in range(10))
    )
    assert len({a.content for a in answers}) == 1
    assert len((await client.get("/v1/orders", params={"status": "all"})).json()) == 1


async def test_tokens(service: GatewayService) -> None:
    async with api_client(service, None) as anonymous:
        assert (await anonymous.get("/v1/status")).status_code == 401
    async with api_client(service, "wrong") as stranger:
        assert (await stranger.get("/v1/status")).status_code == 401
    async with api_client(service) as strategy:
        assert (await strategy.post("/v1/resume", json={})).status_code == 403
        assert (await strategy.post("/v1/sim/quotes", json=[])).status_code == 403
    async with api_client(service, None) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        assert (await anonymous.get("/openapi.json")).status_code == 200


async def test_status_shape(client: httpx.AsyncClient) -> None:
    await client.post("/v1/signals", json=signal("st-1", quantity=100))
    status = (await client.get("/v1/status")).json()
    assert status["state"] == "active"
    assert status["halt"] is None
    assert set(status["risk"]) == {
        "equity",
        "day_start_equity",
        "peak_equity",
        "daily_loss",
        "drawdown",
        "portfolio_heat",
    }
    assert 0.005 < status["risk"]["portfolio_heat"] < 0.007
    assert status["failures"]["consecutive"] == 0
    assert status["orders"] == {"open": 0, "in_flight": 0, "unknown": []}
    assert status["broker"] == {"name": "simulated", "connected": True}
