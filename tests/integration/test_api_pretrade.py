"""Pre-trade rules through the real API, service, engine and simulated broker: quotes from the
future, the short rule, the order rate, and what an accepted order answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from brokers.base import BrokerOrder, OrderRequest
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
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


# --- shorts --------------------------------------------------------------------------------


async def test_selling_a_whole_position_down_to_zero_passes(client: httpx.AsyncClient) -> None:
    assert (await decide(client, "buy", quantity=10))["decision"] == "accepted"
    sell = await decide(client, "sell", side="sell", quantity=10)
    assert sell["decision"] == "accepted" and sell["order"]["status"] == "filled"
    assert (await client.get("/v1/positions")).json() == []


async def test_a_resting_sell_counts_against_the_position(client: httpx.AsyncClient) -> None:
    await decide(client, "buy", quantity=10)
    rest = await decide(
        client, "rest", side="sell", quantity=5, order_type="limit", limit_price=250
    )
    assert rest["order"]["status"] == "accepted"  # passive: it rests
    refused = await decide(client, "sell-10", side="sell", quantity=10)
    assert refused["decision"] == "rejected"
    assert codes(refused) == ["short_not_allowed"]
    assert "open sells 5" in refused["reasons"][0]["message"]
    assert (await decide(client, "sell-5", side="sell", quantity=5))["decision"] == "accepted"


async def test_a_resting_buy_does_not_offset_a_sell(client: httpx.AsyncClient) -> None:
    await decide(client, "buy", quantity=10)
    rest = await decide(client, "rest", quantity=5, order_type="limit", limit_price=150)
    assert rest["order"]["status"] == "accepted"
    assert codes(await decide(client, "sell-15", side="sell", quantity=15)) == ["short_not_allowed"]


async def test_a_sell_without_a_position_is_short_not_allowed(client: httpx.AsyncClient) -> None:
    refused = await decide(client, "naked", side="sell", quantity=1)
    assert refused["decision"] == "rejected"
    assert codes(refused) == ["short_not_allowed"]
    assert (await client.get("/v1/orders", params={"status": "all"})).json() == []


async def test_short_not_allowed_is_listed_with_every_other_failed_check(
    client: httpx.AsyncClient,
) -> None:
    refused = await decide(client, "big-naked", side="sell", quantity=200000)
    assert {"short_not_allowed", "max_order_quantity", "max_order_notional"} <= set(codes(refused))


class GatedBroker(SimulatedBroker):
    """The simulated broker, able to hold the next submit in flight until a test releases it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hold_next = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        if self.hold_next:
            self.hold_next = False
            self.held.set()
            await self.release.wait()
        return await super().submit(order)


async def test_an_in_flight_sell_counts_against_the_position(
    config: GatewayConfig, make_service: Callable[..., Any]
) -> None:
    sim = config.brokers.simulated
    broker = GatedBroker(initial_cash=sim.initial_cash, quotes=dict(sim.quotes))
    service = await make_service(config, broker=broker)
    async with api_client(service) as client:
        await decide(client, "buy", quantity=10)
        broker.hold_next = True
        first = asyncio.create_task(decide(client, "sell-a", side="sell", quantity=10))
        try:
            await asyncio.wait_for(broker.held.wait(), timeout=10)
            # sell-a passed the checks and is at the broker, unanswered: its 10 are in flight.
            second = await decide(client, "sell-b", side="sell", quantity=10)
            assert codes(second) == ["short_not_allowed"]
            assert "open sells 10" in second["reasons"][0]["message"]
        finally:
            broker.release.set()
        assert (await asyncio.wait_for(first, timeout=10))["decision"] == "accepted"
    assert (await broker.positions()) == []


async def test_allow_short_lets_a_sell_open_a_short(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config(risk={"pre_trade": {"allow_short": True}}))
    async with api_client(service) as client:
        sold = await decide(client, "short", side="sell", quantity=10)
        assert sold["decision"] == "accepted", sold
        (position,) = (await client.get("/v1/positions")).json()
        assert position["qty"] == -10


# --- the order rate ------------------------------------------------------------------------


async def test_a_third_signal_at_the_same_instant_is_rate_limited(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config(risk={"pre_trade": {"max_orders_per_second": 2}}))
    async with api_client(service) as client:
        # Sent together: all three reach the bucket within one refill interval (0.5 s).
        answers = await asyncio.gather(*(decide(client, f"r-{n}", quantity=1) for n in range(3)))
    assert sorted(a["decision"] for a in answers) == ["accepted", "accepted", "rejected"]
    (refused,) = [a for a in answers if a["decision"] == "rejected"]
    assert codes(refused) == ["rate_limited"]
    assert refused["order"] is None
    assert len(service.journal.orders()) == 2


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
