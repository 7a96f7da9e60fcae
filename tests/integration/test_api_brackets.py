"""Brackets through the API on the simulated broker: the entry and its exits held by the
broker, journaled, in the decision, and counted at the stop's real distance."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import signal


async def settle(client: httpx.AsyncClient, until: Any, tries: int = 200) -> Any:
    for _ in range(tries):
        value = await until()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("never settled")


async def test_a_bracket_buy_fills_its_stop_and_take_profit_rest_and_the_stop_closes_it(
    service: GatewayService, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    body = signal("br-1", quantity=10, stop_loss_price=190, take_profit_price=220)
    decision = (await client.post("/v1/signals", json=body)).json()
    assert decision["decision"] == "accepted", decision
    entry = decision["order"]["client_order_id"]
    legs = decision["order"]["legs"]
    assert [(leg["role"], leg["order_type"]) for leg in legs] == [
        ("stop_loss", "stop"),
        ("take_profit", "limit"),
    ]
    assert legs[0]["stop_price"] == 190.0 and legs[1]["limit_price"] == 220.0
    # Risk to the stop: 10 x (200.05 - 190) = 100.5 on 100k equity, not 10 x 200.05 x 3%.
    assert abs(decision["risk"]["position_risk"] - 100.5 / 100000) < 1e-9

    async def open_legs() -> list[Any]:
        return [
            o
            for o in service.journal.orders(open_only=True)
            if o.parent_id == entry and o.status != "new"  # held legs are "new" until it fills
        ]

    resting = await settle(client, open_legs)
    assert sorted(o.order_type for o in resting) == ["limit", "stop"]
    status = (await client.get("/v1/status")).json()
    assert abs(status["risk"]["portfolio_heat"] - 10 * (200 - 190) / 100000) < 1e-4

    # The market falls through the stop: the position closes, the take profit is cancelled.
    await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 189.9, "ask": 190.0}])

    async def flat() -> bool:
        return (await client.get("/v1/positions")).json() == [] and not await open_legs()

    await settle(client, flat)
    service.engine.flush_order_updates()
    by_role = {o.role: o.status for o in service.journal.orders() if o.parent_id == entry}
    assert by_role == {"stop_loss": "filled", "take_profit": "canceled"}


async def test_auto_protection_adds_a_stop_to_a_signal_that_opens_a_position(
    make_config: Any, make_service: Any
) -> None:
    from tests.conftest import api_client

    config = make_config(risk={"risk_management": {"protective_stop": "auto"}})
    service = await make_service(config)
    async with api_client(service) as client:
        decision = (await client.post("/v1/signals", json=signal("auto-1", quantity=5))).json()
        assert decision["decision"] == "accepted"
        assert [(leg["role"], leg["stop_price"]) for leg in decision["order"]["legs"]] == [
            ("stop_loss", 194.04)
        ]


async def test_required_protection_refuses_a_signal_without_a_stop_or_with_a_wrong_one(
    make_config: Any, make_service: Any
) -> None:
    from tests.conftest import api_client

    required = make_config(risk={"risk_management": {"protective_stop": "required"}})
    strict = await make_service(required)
    async with api_client(strict) as client:
        refused = (await client.post("/v1/signals", json=signal("req-1"))).json()
        assert [r["code"] for r in refused["reasons"]] == ["stop_loss_required"]
        wrong = signal("req-2", stop_loss_price=201)
        refused = (await client.post("/v1/signals", json=wrong)).json()
        assert [r["code"] for r in refused["reasons"]] == ["protective_price_invalid"]
        assert (await client.get("/v1/orders", params={"status": "all"})).json() == []


async def test_legs_shrink_with_their_position_and_go_when_it_closes(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    body = signal("lf-1", quantity=10, stop_loss_price=190, take_profit_price=220)
    entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]

    def legs() -> dict[str, tuple[str, float]]:
        # The book holds each leg at the broker's last word (the journal's row keeps the
        # quantity it was sent with; its changes are in its order events).
        book = service.engine.book
        found = {}
        for coid, role in book.legs.items():
            if coid.startswith(entry):
                tracked = book.orders.get(coid)
                status = tracked.order.status.value if tracked else "canceled"
                qty = float(tracked.order.remaining_quantity) if tracked else 0.0
                found[role] = (status, qty)
        return found

    async def working() -> bool:
        return all(status == "accepted" for status, _ in legs().values())

    await settle(client, working)
    # Another order sells 4 of the 10: both exits now cover the 6 left.
    sold = (await client.post("/v1/signals", json=signal("lf-2", side="sell", quantity=4))).json()
    assert sold["decision"] == "accepted"

    async def shrunk() -> bool:
        return legs() == {"stop_loss": ("accepted", 6.0), "take_profit": ("accepted", 6.0)}

    await settle(client, shrunk)
    # The rest is sold: the exits are cancelled, so the stop cannot open a short.
    await client.post("/v1/signals", json=signal("lf-3", side="sell", quantity=6))

    async def gone() -> bool:
        return {status for status, _ in legs().values()} == {"canceled"}

    await settle(client, gone)
    assert (await client.get("/v1/positions")).json() == []


async def test_status_shows_the_protection_and_the_kill_switch_cancels_the_legs_too(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    body = signal("ks-1", quantity=10, stop_loss_price=190, take_profit_price=220)
    entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
    unprotected = (await client.post("/v1/signals", json=signal("ks-2", symbol="MSFT"))).json()
    assert unprotected["decision"] == "accepted"

    async def protected() -> list[Any]:
        rows = (await client.get("/v1/status")).json()["protection"]
        return rows if any(r["protected"] for r in rows) else []

    rows = {r["symbol"]: r for r in await settle(client, protected)}
    assert rows["AAPL"]["protected"] is True and rows["AAPL"]["stop_prices"] == [190.0]
    assert rows["AAPL"]["at_risk"] == 10 * (200.0 - 190.0)
    assert rows["MSFT"]["protected"] is False and rows["MSFT"]["stop_prices"] == []
    killed = (await client.post("/v1/kill", json={"reason": "drill"})).json()
    assert killed["cancelled"] == 2  # the stop and the take profit
    assert (await client.get("/v1/orders")).json() == []
    legs = {o.role: o for o in service.journal.orders() if o.parent_id == entry}
    assert set(legs) == {"stop_loss", "take_profit"}
