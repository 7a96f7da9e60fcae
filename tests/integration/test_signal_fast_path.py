"""POST /v1/signals answers the same bytes by the fast path as by the FastAPI route.

The fast path (gateway.http.fastpath) answers the plain case itself and hands everything else
to the route with the body replayed: each request below is sent to an app with the fast path
and to one without it, and the answers must be identical (status, headers, body)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.http.fastpath import SignalFastPath
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, BOUND_TOKENS, MEANREV_TOKEN, STRATEGY_TOKEN, signal

TOKENS = Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN, bound=BOUND_TOKENS)


def clients(service: GatewayService) -> tuple[httpx.AsyncClient, httpx.AsyncClient, list[int]]:
    """A client of the app with the fast path, one of the app without, and a list that grows
    by one for every request the fast path answered itself."""
    fast = create_app(service, TOKENS)
    route = create_app(service, TOKENS)
    route.user_middleware = [m for m in route.user_middleware if m.cls is not SignalFastPath]
    answered: list[int] = []
    original = SignalFastPath._plain_signal

    def counting(self: SignalFastPath, token: str, body: bytes) -> Any:
        found = original(self, token, body)
        if found is not None:
            answered.append(1)
        return found

    SignalFastPath._plain_signal = counting  # type: ignore[method-assign]

    def client(app: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")

    return client(fast), client(route), answered


def same(a: httpx.Response, b: httpx.Response) -> None:
    def headers(r: httpx.Response) -> list[tuple[str, str]]:
        return [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "server")]

    assert (a.status_code, headers(a), a.content) == (b.status_code, headers(b), b.content)


@pytest.fixture
def restore_fast_path() -> Any:
    original = SignalFastPath._plain_signal
    yield
    SignalFastPath._plain_signal = original  # type: ignore[method-assign]


async def test_an_accepted_signal_and_its_replay_answer_the_same_bytes(
    service: GatewayService, restore_fast_path: None
) -> None:
    fast, route, answered = clients(service)
    auth = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
    async with fast, route:
        first = await fast.post("/v1/signals", json=signal("fp-1"), headers=auth)
        assert first.status_code == 200 and answered == [1]
        assert json.loads(first.content)["decision"] == "accepted"
        # The replay of the same signal: by the route, then by the fast path.
        by_route = await route.post("/v1/signals", json=signal("fp-1"), headers=auth)
        by_fast = await fast.post("/v1/signals", json=signal("fp-1"), headers=auth)
        assert by_fast.headers["Idempotent-Replayed"] == "true"
        same(by_fast, by_route)
        assert by_fast.content == first.content
        # The same signal_id with another body: 409 signal_id_conflict from both.
        other = signal("fp-1", quantity=11)
        same(
            await fast.post("/v1/signals", json=other, headers=auth),
            await route.post("/v1/signals", json=other, headers=auth),
        )


REFUSALS: list[tuple[str, dict[str, str], bytes]] = [
    ("no token", {"Content-Type": "application/json"}, b""),
    ("unknown token", {"Authorization": "Bearer nope"}, b""),
    ("another scheme", {"Authorization": f"Basic {STRATEGY_TOKEN}"}, b""),
    ("bound elsewhere", {"Authorization": f"Bearer {MEANREV_TOKEN}"}, b""),
    ("not JSON", {"Authorization": f"Bearer {STRATEGY_TOKEN}"}, b"{nope"),
    ("a number not exact", {"Authorization": f"Bearer {STRATEGY_TOKEN}"}, b"1.00000000000000001"),
    ("unknown field", {"Authorization": f"Bearer {STRATEGY_TOKEN}"}, b'"extra"'),
    # Decimal cannot hold the exponent: json.loads raises InvalidOperation, not a ValueError.
    (
        "exponent out of reach",
        {"Authorization": f"Bearer {STRATEGY_TOKEN}"},
        b"1e99999999999999999999",
    ),
    ("text body", {"Authorization": f"Bearer {STRATEGY_TOKEN}", "Content-Type": "text/plain"}, b""),
]


@pytest.mark.parametrize(("case", "headers", "twist"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_every_refusal_is_the_routes_own(
    service: GatewayService,
    restore_fast_path: None,
    case: str,
    headers: dict[str, str],
    twist: bytes,
) -> None:
    fast, route, answered = clients(service)
    body = json.dumps(signal(f"fp-{case}")).encode()
    if twist == b"{nope":
        body = twist
    elif twist == b'"extra"':
        body = json.dumps({**signal(f"fp-{case}"), "extra": 1}).encode()
    elif twist:
        body = body.replace(b'"quantity": 10', b'"quantity": ' + twist)
    sent = {"Content-Type": "application/json", **headers}
    async with fast, route:
        by_fast = await fast.post("/v1/signals", content=body, headers=sent)
        by_route = await route.post("/v1/signals", content=body, headers=sent)
    assert by_fast.status_code in (400, 401, 403, 415, 422), by_fast.text
    same(by_fast, by_route)
    assert answered == []


async def test_a_gateway_not_ready_answers_the_routes_503(
    service: GatewayService, restore_fast_path: None
) -> None:
    fast, route, answered = clients(service)
    auth = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
    service.engine.ready = False
    try:
        async with fast, route:
            by_fast = await fast.post("/v1/signals", json=signal("fp-nr"), headers=auth)
            by_route = await route.post("/v1/signals", json=signal("fp-nr"), headers=auth)
    finally:
        service.engine.ready = True
    assert by_fast.status_code == 503
    same(by_fast, by_route)
    assert answered == []
