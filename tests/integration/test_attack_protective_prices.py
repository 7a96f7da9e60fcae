"""Attack: a bracket's exits measured against where the entry can really fill, not the quote.

A passive limit buy at 150 with a stop loss at 190 (below the ask of 200.05, above the limit):
the gateway let it through to the broker, which refused it (the simulated broker, and Alpaca,
check it; a broker that does not would sell the position the moment it opens). A stop entry
at 205 with its stop loss at 203 is right, and was refused (measured against the ask)."""

from __future__ import annotations

from typing import Any

from tests.conftest import api_client, signal


async def test_a_stop_above_a_passive_limit_buy_is_refused_before_the_broker(service: Any) -> None:
    async with api_client(service) as client:
        body = signal("pp-1", order_type="limit", limit_price=150, stop_loss_price=190)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "rejected"
        assert [r["code"] for r in decision["reasons"]] == ["protective_price_invalid"]
        body = signal("pp-2", side="sell", order_type="limit", limit_price=260, stop_loss_price=210)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert "protective_price_invalid" in [r["code"] for r in decision["reasons"]]
        assert (await client.get("/v1/orders", params={"status": "all"})).json() == []
        # Below the limit it is right, and a take profit above the limit (not the ask) too.
        body = signal(
            "pp-3",
            order_type="limit",
            limit_price=150,
            stop_loss_price=140,
            take_profit_price=180,
        )
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted", decision


async def test_a_stop_loss_below_a_buy_stop_entry_but_above_the_ask_is_accepted(
    service: Any,
) -> None:
    async with api_client(service) as client:
        body = signal("ps-1", order_type="stop", stop_price=205, stop_loss_price=203)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted", decision
        assert [(leg["role"], leg["stop_price"]) for leg in decision["order"]["legs"]] == [
            ("stop_loss", 203.0)
        ]


async def test_auto_stop_of_a_marketable_limit_buy_is_below_its_fill(
    make_config: Any, make_service: Any
) -> None:
    config = make_config(risk={"risk_management": {"protective_stop": "auto"}})
    service = await make_service(config)
    async with api_client(service) as client:
        body = signal("pa-1", quantity=1, order_type="limit", limit_price=210)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted", decision
        (leg,) = decision["order"]["legs"]
        assert leg["stop_price"] < 200.0  # 3% below the ask it fills at, not below 210
