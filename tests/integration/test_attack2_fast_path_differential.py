"""Attack: hostile requests to POST /v1/signals answer the same by the fast path as by the route.

Each request is sent to the route alone, then to the app with the fast path, then to the route
again (all three share one service): the fast path's answer must be the second route answer's,
byte for byte (a signal the route accepted is a replay by then, for both), and when the route
refused the request the first time the fast path must refuse it too (it decided nothing)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.http.fastpath import SignalFastPath
from gateway.service import GatewayService
from tests.conftest import (
    ADMIN_TOKEN,
    BOUND_TOKENS,
    MEANREV_TOKEN,
    MOMENTUM_TOKEN,
    STRATEGY_TOKEN,
    signal,
)

TOKENS = Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN, bound=BOUND_TOKENS)
JSON = ("Content-Type", "application/json")


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def _apps(service: GatewayService) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    fast = create_app(service, TOKENS)
    route = create_app(service, TOKENS)
    route.user_middleware = [m for m in route.user_middleware if m.cls is not SignalFastPath]
    return _client(fast), _client(route)


def _view(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "server")]
    return r.status_code, headers, r.content


def _body(signal_id: str, **fields: Any) -> bytes:
    return json.dumps(signal(signal_id, **fields)).encode()


# (id, headers as a list (duplicates kept), body, path)
CASES: list[tuple[str, list[tuple[str, str]], bytes, str]] = [
    (
        "basic-then-bearer",
        [
            ("Authorization", f"Basic {STRATEGY_TOKEN}"),
            ("Authorization", f"Bearer {STRATEGY_TOKEN}"),
            JSON,
        ],
        _body("a2-dup-basic"),
        "/v1/signals",
    ),
    (
        "empty-bearer-then-bearer",
        [("Authorization", "Bearer"), ("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-dup-empty"),
        "/v1/signals",
    ),
    (
        "bearer-space-then-bearer",
        [("Authorization", "Bearer  "), ("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-dup-space"),
        "/v1/signals",
    ),
    (
        "unknown-then-known",
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-dup-unknown"),
        "/v1/signals",
    ),
    (
        "bound-elsewhere-then-bound",
        [
            ("Authorization", f"Bearer {MEANREV_TOKEN}"),
            ("Authorization", f"Bearer {MOMENTUM_TOKEN}"),
            JSON,
        ],
        _body("a2-dup-bound"),
        "/v1/signals",
    ),
    (
        "lowercase-bearer",
        [("Authorization", f"bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-lower"),
        "/v1/signals",
    ),
    (
        "two-spaces",
        [("Authorization", f"Bearer  {STRATEGY_TOKEN}"), JSON],
        _body("a2-two-spaces"),
        "/v1/signals",
    ),
    (
        "tab-separator",
        [("Authorization", f"Bearer\t{STRATEGY_TOKEN}"), JSON],
        _body("a2-tab"),
        "/v1/signals",
    ),
    (
        "utf16-body",
        [
            ("Authorization", f"Bearer {STRATEGY_TOKEN}"),
            ("Content-Type", "application/json; charset=utf-16"),
        ],
        json.dumps(signal("a2-utf16")).encode("utf-16"),
        "/v1/signals",
    ),
    (
        "utf8-bom",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        b"\xef\xbb\xbf" + _body("a2-bom"),
        "/v1/signals",
    ),
    (
        "duplicate-keys",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-dupkey")[:-1] + b', "quantity": 11}',
        "/v1/signals",
    ),
    (
        "huge-int",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-huge").replace(b'"quantity": 10', b'"quantity": ' + b"9" * 4000),
        "/v1/signals",
    ),
    (
        "tiny-exponent",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-tiny").replace(b'"quantity": 10', b'"quantity": 1e-400'),
        "/v1/signals",
    ),
    (
        "exponent-integral",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-1e1").replace(b'"quantity": 10', b'"quantity": 1e1'),
        "/v1/signals",
    ),
    (
        "nan",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-nan").replace(b'"quantity": 10', b'"quantity": NaN'),
        "/v1/signals",
    ),
    (
        "infinity",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-inf").replace(b'"quantity": 10', b'"quantity": Infinity'),
        "/v1/signals",
    ),
    (
        "nested-extra",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        json.dumps({**signal("a2-nested"), "meta": {"a": [1, {"b": 2}]}}).encode(),
        "/v1/signals",
    ),
    (
        "strategy-null-bound",
        [("Authorization", f"Bearer {MOMENTUM_TOKEN}"), JSON],
        json.dumps({**signal("a2-null"), "strategy": None}).encode(),
        "/v1/signals",
    ),
    (
        "quantity-as-string",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-str").replace(b'"quantity": 10', b'"quantity": "10"'),
        "/v1/signals",
    ),
    (
        "quantity-bool",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-bool").replace(b'"quantity": 10', b'"quantity": true'),
        "/v1/signals",
    ),
    (
        "json-list",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        b"[" + _body("a2-list") + b"]",
        "/v1/signals",
    ),
    (
        "trailing-garbage",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-garbage") + b"x",
        "/v1/signals",
    ),
    (
        "json-suffix-type",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), ("Content-Type", "application/vnd.x+json")],
        _body("a2-plusjson"),
        "/v1/signals",
    ),
    (
        "uppercase-type",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), ("Content-Type", "APPLICATION/JSON ; x=y")],
        _body("a2-upper-type"),
        "/v1/signals",
    ),
    (
        "two-content-types",
        [
            ("Authorization", f"Bearer {STRATEGY_TOKEN}"),
            ("Content-Type", "text/plain"),
            ("Content-Type", "application/json"),
        ],
        _body("a2-two-types"),
        "/v1/signals",
    ),
    (
        "query-string",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-query"),
        "/v1/signals?x=1",
    ),
    (
        "trailing-slash",
        [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON],
        _body("a2-slash"),
        "/v1/signals/",
    ),
    (
        "admin-token",
        [("Authorization", f"Bearer {ADMIN_TOKEN}"), JSON],
        _body("a2-admin"),
        "/v1/signals",
    ),
]


@pytest.mark.parametrize(("case", "headers", "body", "path"), CASES, ids=[c[0] for c in CASES])
async def test_hostile_signal_requests_answer_as_the_route_does(
    service: GatewayService,
    case: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path: str,
) -> None:
    fast, route = _apps(service)
    async with fast, route:
        first = await route.post(path, content=body, headers=headers)
        by_fast = await fast.post(path, content=body, headers=headers)
        again = await route.post(path, content=body, headers=headers)
    assert by_fast.status_code < 500, by_fast.text
    assert _view(by_fast) == _view(again)
    if first.status_code != 200:
        assert _view(by_fast) == _view(first)


async def test_get_and_head_on_the_signals_path_answer_as_the_route_does(
    service: GatewayService,
) -> None:
    fast, route = _apps(service)
    auth = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
    async with fast, route:
        for method in ("GET", "HEAD", "PUT", "OPTIONS"):
            a = await fast.request(method, "/v1/signals", headers=auth)
            b = await route.request(method, "/v1/signals", headers=auth)
            assert _view(a) == _view(b), method


async def test_a_chunked_body_answers_as_the_route_does(service: GatewayService) -> None:
    fast, route = _apps(service)
    headers = {"Authorization": f"Bearer {STRATEGY_TOKEN}", "Content-Type": "application/json"}
    body = _body("a2-chunked")

    async def chunks() -> Any:
        yield body[:7]
        yield body[7:]

    async with fast, route:
        first = await route.post("/v1/signals", content=chunks(), headers=headers)
        by_fast = await fast.post("/v1/signals", content=chunks(), headers=headers)
        again = await route.post("/v1/signals", content=chunks(), headers=headers)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    assert _view(by_fast) == _view(again)


async def test_a_halted_gateway_answers_as_the_route_does(service: GatewayService) -> None:
    fast, route = _apps(service)
    auth = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with fast, route:
        halted = await route.post("/v1/halt", json={"reason": "attack"}, headers=admin)
        assert halted.status_code < 300, halted.text
        first = await route.post("/v1/signals", json=signal("a2-halt"), headers=auth)
        by_fast = await fast.post("/v1/signals", json=signal("a2-halt"), headers=auth)
        again = await route.post("/v1/signals", json=signal("a2-halt"), headers=auth)
        fresh_fast = await fast.post("/v1/signals", json=signal("a2-halt-f"), headers=auth)
        fresh_route = await route.post("/v1/signals", json=signal("a2-halt-f"), headers=auth)
    assert _view(by_fast) == _view(again)
    assert json.loads(first.content) == json.loads(by_fast.content)
    assert json.loads(fresh_fast.content)["decision"] == json.loads(fresh_route.content)["decision"]


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "one-past"])
async def test_a_body_at_and_past_the_size_limit_answers_as_the_route_does(
    service: GatewayService, extra: int
) -> None:
    from gateway.http.limits import MAX_BODY_BYTES

    raw = _body(f"a2-size-{extra}")
    body = raw[:-1] + b" " * (MAX_BODY_BYTES + extra - len(raw)) + b"}"
    assert len(body) == MAX_BODY_BYTES + extra
    headers = [("Authorization", f"Bearer {STRATEGY_TOKEN}"), JSON]
    fast, route = _apps(service)
    async with fast, route:
        first = await route.post("/v1/signals", content=body, headers=headers)
        by_fast = await fast.post("/v1/signals", content=body, headers=headers)
        again = await route.post("/v1/signals", content=body, headers=headers)
    assert first.status_code == (200 if extra == 0 else 413), first.text
    assert _view(by_fast) == _view(again)


async def test_a_second_authorization_header_over_the_wire_is_not_the_token(
    service: GatewayService,
) -> None:
    """Through uvicorn (both Authorization headers reach the app): a first header that is not
    a bearer token is the route's 401, whatever a second one says."""
    import asyncio
    from urllib.parse import urlsplit

    from tests.integration.sse import serving

    body = _body("a2-wire-dup")
    async with serving(service) as url:
        where = urlsplit(url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            b"POST /v1/signals HTTP/1.1\r\nHost: gw\r\n"
            + f"Authorization: Basic {STRATEGY_TOKEN}\r\n".encode()
            + f"Authorization: Bearer {STRATEGY_TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    status = answer.split(b"\r\n", 1)[0]
    assert b" 401 " in status, answer
    assert service.journal.signal("a2-wire-dup") is None  # nothing decided
