"""Exact numbers or none, through the real API, engine, journal and simulated broker: what the
gateway answers, journals and sends is the number the client sent; anything it cannot carry
exactly is a 422 naming the field, and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal

D = Decimal
JSON = {"Content-Type": "application/json"}


async def nothing_journaled(service: GatewayService, client: httpx.AsyncClient) -> None:
    assert service.journal.orders() == []
    assert list(service.journal.signals()) == []
    assert (await client.get("/v1/orders", params={"status": "all"})).json() == []


@pytest.mark.parametrize("sent", ["0.1", 0.1, "0.000000001", "1.23456789", "33.333333333"])
async def test_a_quantity_is_answered_journaled_and_sent_as_sent(
    service: GatewayService, client: httpx.AsyncClient, sent: Any
) -> None:
    exact = D(str(sent))
    body = (await client.post("/v1/signals", json=signal("q-1", quantity=sent))).json()
    assert body["decision"] == "accepted", body
    order = body["order"]
    assert D(repr(order["quantity"])) == exact  # the JSON number is the number sent
    (stored,) = service.journal.orders()
    assert D(stored.quantity) == exact
    at_broker = await service.broker.get_order(order["client_order_id"])
    assert at_broker is not None and at_broker.quantity == exact
    (listed,) = (await client.get("/v1/orders", params={"status": "all"})).json()
    assert D(repr(listed["quantity"])) == exact
    (position,) = (await client.get("/v1/positions")).json()
    assert D(repr(position["qty"])) == exact


async def test_a_limit_price_is_answered_journaled_and_sent_as_sent(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    limit = "199.123456789"  # passive: the order rests at exactly this price
    sent = signal("l-1", order_type="limit", limit_price=limit, quantity=3)
    body = (await client.post("/v1/signals", json=sent)).json()
    assert body["decision"] == "accepted", body
    assert body["order"]["status"] == "accepted"
    assert D(repr(body["order"]["price"])) == D(limit)
    (stored,) = service.journal.orders()
    assert stored.limit_price is not None and D(stored.limit_price) == D(limit)
    at_broker = await service.broker.get_order(body["order"]["client_order_id"])
    assert at_broker is not None and at_broker.limit_price == D(limit)


@pytest.mark.parametrize(
    ("field", "sent", "reason"),
    [
        ("quantity", "1e-400", "decimal places"),  # was accepted, filled and journaled as 0.0
        ("quantity", "1e999999", "below"),  # was a 500 (decimal.Overflow in the checks)
        ("quantity", "1.0000000000000001", "decimal places"),
        ("quantity", "1234567.123456789", "significant digits"),
        ("limit_price", "1e-400", "decimal places"),
        ("limit_price", "1e999999", "below"),
    ],
)
async def test_numbers_the_gateway_cannot_carry_are_422_naming_the_field(
    service: GatewayService, client: httpx.AsyncClient, field: str, sent: str, reason: str
) -> None:
    body = signal("bad-1", order_type="limit", limit_price=150)
    body[field] = sent
    response = await client.post("/v1/signals", json=body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert reason in error["reason"]
    await nothing_journaled(service, client)


@pytest.mark.parametrize("token", ["1e-400", "1e999999", "-1e999999", "NaN", "Infinity"])
async def test_json_number_tokens_out_of_range_are_422(
    service: GatewayService, client: httpx.AsyncClient, token: str
) -> None:
    # As JSON numbers (not strings) these parse to 0.0, infinities or NaN before any model sees
    # them: refused all the same.
    content = (
        '{"signal_id": "t-1", "strategy": "s", "symbol": "AAPL", "side": "buy", '
        f'"quantity": {token}}}'
    )
    response = await client.post("/v1/signals", content=content, headers=JSON)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["quantity"]
    await nothing_journaled(service, client)


async def test_the_same_number_written_differently_is_the_same_body(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/v1/signals", json=signal("same-1", quantity="0.1"))
    again = await client.post("/v1/signals", json=signal("same-1", quantity=0.1))
    assert again.status_code == 200 and again.content == first.content
    again = await client.post("/v1/signals", json=signal("same-1", quantity="0.10"))
    assert again.status_code == 200 and again.content == first.content


async def test_bodies_differing_in_the_last_carried_digit_are_different_bodies(
    client: httpx.AsyncClient,
) -> None:
    passive = signal("diff-1", order_type="limit", limit_price="150.000000001", quantity=1)
    assert (await client.post("/v1/signals", json=passive)).status_code == 200
    passive["limit_price"] = "150.000000002"
    assert (await client.post("/v1/signals", json=passive)).status_code == 409


@pytest.mark.parametrize("path", ["/v1/halt", "/v1/kill"])
@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
async def test_a_blank_halt_or_kill_reason_is_422_and_changes_nothing(
    service: GatewayService, client: httpx.AsyncClient, path: str, reason: str
) -> None:
    response = await client.post(path, json={"reason": reason})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["reason"]
    assert not service.halt.is_halted
    assert (await client.get("/v1/status")).json()["state"] == "active"


async def test_a_halt_reason_is_kept_stripped(client: httpx.AsyncClient) -> None:
    status = (await client.post("/v1/halt", json={"reason": "  broker is slow  "})).json()
    assert status["halt"]["reason"] == "broker is slow"


async def test_a_blank_outcome_error_is_422(client: httpx.AsyncClient) -> None:
    report = {"strategy": "momentum", "ok": False, "failure_type": "data_error", "error": "  "}
    response = await client.post("/v1/outcomes", json=report)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["error"]
    assert (await client.get("/v1/status")).json()["failures"]["consecutive"] == 0


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("NaN", "finite"),
        ("1e300", "epoch seconds must lie in"),
        ("-1", "epoch seconds must lie in"),
        ('"2200-01-01T00:00:00Z"', "years 1970 to 2199"),
        ('"next week"', "datetime"),
        ("true", "boolean"),
    ],
)
async def test_a_sim_quote_time_out_of_range_is_422_and_moves_nothing(
    service: GatewayService, token: str, reason: str
) -> None:
    before = service.quotes.get("AAPL")
    content = f'[{{"symbol": "AAPL", "bid": 150, "ask": 150.1, "ts": {token}}}]'
    async with api_client(service, ADMIN_TOKEN) as admin:
        response = await admin.post("/v1/sim/quotes", content=content, headers=JSON)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "0.ts"
    assert reason in error["reason"]
    assert service.quotes.get("AAPL") == before


async def test_sim_quote_prices_follow_the_number_domain(service: GatewayService) -> None:
    async with api_client(service, ADMIN_TOKEN) as admin:
        bad = await admin.post(
            "/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": "1e-400", "ask": 200}]
        )
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["0.bid"]
        good = await admin.post(
            "/v1/sim/quotes",
            json=[{"symbol": "AAPL", "bid": "0.000000001", "ask": "0.000000002", "ts": 1.7e9}],
        )
        assert good.status_code == 200
        (taken,) = good.json()
        assert (taken["bid"], taken["ask"]) == (1e-9, 2e-9)


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("quantity", "1.00000000000000001"),  # a double reads it as 1.0
        ("quantity", "10.0000000000000000001"),
        ("limit_price", "150.0000000000000001"),
    ],
)
async def test_json_numbers_beyond_a_double_are_422_not_rounded(
    service: GatewayService, client: httpx.AsyncClient, field: str, token: str
) -> None:
    # Sent as JSON number tokens, not strings: the body is read with its digits exact, so a
    # number the gateway cannot carry is refused instead of silently becoming its rounding.
    limit = '"order_type": "limit", ' if field == "limit_price" else ""
    quantity = token if field == "quantity" else "1"
    price = f', "limit_price": {token}' if field == "limit_price" else ""
    content = (
        '{"signal_id": "t-2", "strategy": "s", "symbol": "AAPL", "side": "buy", '
        f'{limit}"quantity": {quantity}{price}}}'
    )
    response = await client.post("/v1/signals", content=content, headers=JSON)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    await nothing_journaled(service, client)
