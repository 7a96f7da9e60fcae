"""Stop and stop_limit signals through the API: validated at the edge, valued and collared
from where they trigger, and refused before the broker when a check fails."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import signal


async def test_a_stop_limit_reaching_through_its_trigger_is_collared(
    client: httpx.AsyncClient,
) -> None:
    # Ask 200.05; a buy stop at 210 triggers there, and a 5% collar allows a limit up to 220.5.
    far = signal("sl-1", order_type="stop_limit", stop_price=210, limit_price=221, quantity=1)
    body = (await client.post("/v1/signals", json=far)).json()
    assert [r["code"] for r in body["reasons"]] == ["price_collar"]
    assert "above stop 210" in body["reasons"][0]["message"]
    # Sell side: bid 199.95, stop 190, the limit may go down to 180.5.
    low = signal(
        "sl-2", side="sell", order_type="stop_limit", stop_price=190, limit_price=180, quantity=1
    )
    body = (await client.post("/v1/signals", json=low)).json()
    assert "price_collar" in [r["code"] for r in body["reasons"]]


async def test_a_stop_is_valued_at_its_trigger_for_every_limit(client: httpx.AsyncClient) -> None:
    # Valued at the stop (300), 333 shares are 99,900 of exposure: over the 2% position risk
    # at a 3% stop on 100k equity (66,666.67), where at the ask (200.05) it would pass.
    big = signal("st-1", order_type="stop", stop_price=300, quantity=333)
    body = (await client.post("/v1/signals", json=big)).json()
    assert body["decision"] == "rejected"
    assert "position_risk" in [r["code"] for r in body["reasons"]]


async def test_stop_fields_that_do_not_fit_the_type_are_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    cases = [
        (signal("sf-1", order_type="stop"), "stop_price"),
        (signal("sf-2", stop_price=210), "stop_price"),
        (signal("sf-3", order_type="stop_limit", stop_price=210), "limit_price"),
        (signal("sf-4", order_type="stop", stop_price=0), "stop_price"),
        (signal("sf-5", order_type="stop", stop_price="1e-400"), "stop_price"),
    ]
    for body, field in cases:
        response = await client.post("/v1/signals", json=body)
        assert response.status_code == 422, body
        assert field in response.json()["message"], (body, response.json())


async def test_a_buy_stop_rests_and_fills_when_the_ask_reaches_it(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    stop = signal("st-2", order_type="stop", stop_price=201, quantity=2)
    body = (await client.post("/v1/signals", json=stop)).json()
    assert body["decision"] == "accepted", body
    assert body["order"]["price"] == 201.0  # valued at its trigger, above the ask
    assert body["order"]["status"] == "accepted"
    coid = body["order"]["client_order_id"]
    resting = (await client.get("/v1/orders")).json()
    assert [(o["client_order_id"], o["order_type"], o["stop_price"]) for o in resting] == [
        (coid, "stop", 201.0)
    ]
    # One cent below the stop: nothing; at the stop: it triggers and fills at the ask.
    await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 200.89, "ask": 200.99}])
    assert (await client.get("/v1/positions")).json() == []
    await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 200.9, "ask": 201.0}])
    for _ in range(100):
        positions = (await client.get("/v1/positions")).json()
        if positions:
            break
        await asyncio.sleep(0.01)
    assert [(p["symbol"], p["qty"]) for p in positions] == [("AAPL", 2.0)]
    assert (await client.get("/v1/orders")).json() == []
