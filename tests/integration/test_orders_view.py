"""GET /v1/orders and /v1/orders/{client_order_id}: the Order view, its filters, and what a
bound token may see."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, MOMENTUM_TOKEN, api_client, signal


def rest(signal_id: str, **fields: Any) -> dict[str, Any]:
    """A buy limit well below the market: it rests."""
    body = {"order_type": "limit", "limit_price": 190, "quantity": 5, **fields}
    return signal(signal_id, **body)


async def test_an_order_reads_with_whose_it_is_and_when(client: httpx.AsyncClient) -> None:
    decision = (await client.post("/v1/signals", json=rest("v-1", time_in_force="gtc"))).json()
    coid = decision["order"]["client_order_id"]
    read = await client.get(f"/v1/orders/{coid}")
    assert read.status_code == 200
    order = read.json()
    assert order["client_order_id"] == coid == client_order_id("v-1")
    assert order["strategy"] == "momentum" and order["signal_id"] == "v-1"
    assert order["order_type"] == "limit" and order["time_in_force"] == "gtc"
    assert order["limit_price"] == 190 and order["quantity"] == 5
    assert order["status"] == "accepted" and order["stop_price"] is None
    assert order["parent_id"] is None and order["created_at"] and order["updated_at"]
    assert (await client.get("/v1/orders")).json() == [order]


async def test_an_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/orders/gw-nothing")
    assert missing.status_code == 404
    assert missing.json()["code"] == "order_not_found"


async def test_every_filter_given_must_match(client: httpx.AsyncClient) -> None:
    await client.post("/v1/signals", json=rest("f-1"))
    await client.post("/v1/signals", json=rest("f-2", strategy="meanrev"))
    await client.post("/v1/signals", json=rest("f-3", symbol="MSFT", limit_price=400))
    await client.post("/v1/signals", json=signal("f-4", quantity=1))  # fills: not open

    async def ids(**params: str) -> list[str]:
        answer = await client.get("/v1/orders", params=params)
        assert answer.status_code == 200, answer.text
        return [o["signal_id"] for o in answer.json()]

    assert await ids() == ["f-1", "f-2", "f-3"]
    assert await ids(status="all") == ["f-1", "f-2", "f-3", "f-4"]
    assert await ids(strategy="meanrev") == ["f-2"]
    assert await ids(symbol="MSFT") == ["f-3"]
    assert await ids(strategy="momentum", symbol="AAPL") == ["f-1"]
    assert await ids(strategy="momentum", symbol="AAPL", status="all") == ["f-1", "f-4"]
    assert await ids(strategy="meanrev", symbol="MSFT") == []


async def test_an_unknown_or_bad_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    for params, field in (
        ({"stauts": "all"}, "query.stauts"),
        ({"status": "closed"}, "query.status"),
        ({"symbol": "not a symbol"}, "query.symbol"),
    ):
        answer = await client.get("/v1/orders", params=params)
        assert answer.status_code == 422, params
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    one = await client.get("/v1/orders/gw-x", params={"status": "all"})
    assert one.status_code == 422 and one.json()["errors"] == [
        {"field": "query.status", "reason": "unknown query parameter"}
    ]


async def test_a_bound_token_sees_only_its_strategies_orders(service: GatewayService) -> None:
    async with api_client(service) as anyone:
        await anyone.post("/v1/signals", json=rest("b-1"))
        await anyone.post("/v1/signals", json=rest("b-2", strategy="meanrev"))
    async with api_client(service, MEANREV_TOKEN) as meanrev:
        assert [o["signal_id"] for o in (await meanrev.get("/v1/orders")).json()] == ["b-2"]
        filtered = await meanrev.get("/v1/orders", params={"strategy": "momentum"})
        assert filtered.json() == []
        other = await meanrev.get(f"/v1/orders/{client_order_id('b-1')}")
        assert other.status_code == 404 and other.json()["code"] == "order_not_found"
        own = await meanrev.get(f"/v1/orders/{client_order_id('b-2')}")
        assert own.status_code == 200
    async with api_client(service, MOMENTUM_TOKEN) as momentum:
        assert [o["signal_id"] for o in (await momentum.get("/v1/orders")).json()] == ["b-1"]


async def test_after_a_kill_its_cancelled_orders_are_not_open(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    for n in range(5):
        await client.post("/v1/signals", json=rest(f"k-{n}"))
    assert len((await client.get("/v1/orders")).json()) == 5
    killed = await client.post("/v1/kill", json={"reason": "drill"})
    assert killed.json()["cancelled"] == 5
    assert (await client.get("/v1/orders")).json() == []
    every = (await client.get("/v1/orders", params={"status": "all"})).json()
    assert {o["status"] for o in every} == {"canceled"}


async def test_the_schema_describes_every_order_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    one = schema["paths"]["/v1/orders/{client_order_id}"]
    assert set(one) == {"get", "delete", "patch"}
    body = one["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/OrderReplace")
    assert {"404", "409", "422", "503"} <= set(one["patch"]["responses"])
    assert {"404", "409", "503"} <= set(one["delete"]["responses"])
    listed = schema["paths"]["/v1/orders"]["get"]
    assert {p["name"] for p in listed["parameters"]} == {
        "status",
        "strategy",
        "symbol",
        "limit",
        "after",
    }
    assert set(schema["components"]["schemas"]["Order"]["properties"]) >= {
        "strategy",
        "signal_id",
        "order_type",
        "time_in_force",
        "stop_price",
        "parent_id",
        "created_at",
        "updated_at",
    }


@pytest.mark.parametrize("coid", ["%00", "%ff%fe", "x" * 5000, "..", "%F0%9F%92%A5", "a%2Fb"])
async def test_no_order_id_a_client_sends_is_a_500(client: httpx.AsyncClient, coid: str) -> None:
    for method, body in (
        ("GET", None),
        ("DELETE", None),
        ("PATCH", {"signal_id": "z", "quantity": 1}),
    ):
        answer = await client.request(method, f"/v1/orders/{coid}", json=body)
        assert answer.status_code in (404, 422), (method, coid, answer.status_code)
