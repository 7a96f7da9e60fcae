"""Pre-trade rules through the real API, service, engine and simulated broker: quotes from the
future, the short rule, the order rate, and what an accepted order answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal


async def push_quote(service: GatewayService, **quote: Any) -> None:
    async with api_client(service, ADMIN_TOKEN) as admin:
        response = await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", **quote}])
        assert response.status_code == 200, response.text


async def decide(client: httpx.AsyncClient, signal_id: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/signals", json=signal(signal_id, **fields))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(decision: dict[str, Any]) -> list[str]:
    return [r["code"] for r in decision["reasons"]]


# --- quotes from the future ----------------------------------------------------------------


async def test_a_quote_from_a_year_ahead_is_quote_invalid(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    await push_quote(service, bid=199.95, ask=200.05, ts=ahead)
    decision = await decide(client, "future-1")
    assert decision["decision"] == "rejected"
    assert codes(decision) == ["quote_invalid"]
    assert "ahead of the gateway's clock" in decision["reasons"][0]["message"]


async def test_a_quote_slightly_ahead_is_within_the_slack(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    # quotes.max_future_s is 2 s by default: a feed a second ahead of our clock still trades.
    ahead = (datetime.now(UTC) + timedelta(seconds=1)).timestamp()
    await push_quote(service, bid=199.95, ask=200.05, ts=ahead)
    assert (await decide(client, "future-2"))["decision"] == "accepted"


# --- what an accepted order answers --------------------------------------------------------


async def test_price_is_the_valuation_and_avg_fill_price_what_it_filled_at(
    client: httpx.AsyncClient,
) -> None:
    # A marketable limit buy at 205 is valued at its limit; the market fills it at the ask.
    limit = await decide(client, "lim", quantity=10, order_type="limit", limit_price=205)
    order = limit["order"]
    assert order["status"] == "filled"
    assert (order["price"], order["avg_fill_price"]) == (205.0, 200.05)
    assert order["notional"] == 2050.0
    market = (await decide(client, "mkt", quantity=1))["order"]
    assert (market["price"], market["avg_fill_price"]) == (200.05, 200.05)


async def test_avg_fill_price_is_null_until_something_fills(client: httpx.AsyncClient) -> None:
    resting = await decide(client, "rest", quantity=1, order_type="limit", limit_price=150)
    assert resting["order"]["status"] == "accepted"
    assert resting["order"]["price"] == 150.0
    assert resting["order"]["avg_fill_price"] is None
