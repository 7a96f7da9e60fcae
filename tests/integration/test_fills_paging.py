"""GET /v1/fills in pages, as GET /v1/orders pages: ``limit`` and ``after`` (the fill_id of the
last fill a client has) are optional; without them the answer is every matching fill."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def _fills(service: GatewayService, client: httpx.AsyncClient, n: int) -> None:
    for k in range(n):
        answer = await client.post("/v1/signals", json=signal(f"fp-{k}", quantity=1))
        assert answer.json()["decision"] == "accepted"
    for _ in range(300):
        service.engine.flush_order_updates()
        if len(service.journal.fills()) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the fills never came")


async def _pages(client: httpx.AsyncClient, limit: int, **extra: str) -> list[list[Any]]:
    pages: list[list[Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **extra}
        if after is not None:
            params["after"] = after
        answer = await client.get("/v1/fills", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page:
            return pages
        assert len(page) <= limit
        pages.append(page)
        after = page[-1]["fill_id"]


async def test_pages_cover_every_fill_once_in_order(service: GatewayService) -> None:
    async with api_client(service) as client:
        await _fills(service, client, 5)
        everything = (await client.get("/v1/fills")).json()
        pages = await _pages(client, 2)
        filtered = await _pages(client, 3, strategy="momentum", symbol="AAPL")
    assert len(everything) == 5
    assert [f for p in pages for f in p] == everything
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [f for p in filtered for f in p] == everything


async def test_bad_limits_and_unknown_cursors_are_refused(service: GatewayService) -> None:
    async with api_client(service) as client:
        await _fills(service, client, 1)
        first = (await client.get("/v1/fills")).json()[0]["fill_id"]
        unknown = await client.get("/v1/fills", params={"after": "nope"})
        zero = await client.get("/v1/fills", params={"limit": 0})
        huge = await client.get("/v1/fills", params={"limit": 10_001})
        word = await client.get("/v1/fills", params={"limit": "many"})
        typo = await client.get("/v1/fills", params={"limt": 2})
        # Another strategy's fill is unknown to it, as its order would be.
        other = await client.get("/v1/fills", params={"strategy": "meanrev", "after": first})
        last = await client.get("/v1/fills", params={"after": first})
    assert unknown.status_code == 404
    assert unknown.json() == {"code": "fill_not_found", "message": "after: no fill nope"}
    for refused, field in ((zero, "limit"), (huge, "limit"), (word, "limit"), (typo, "limt")):
        assert refused.status_code == 422
        assert [e["field"] for e in refused.json()["errors"]] == [f"query.{field}"]
    assert other.status_code == 404
    assert last.status_code == 200 and last.json() == []


async def test_a_fill_without_a_broker_id_is_a_cursor_too(service: GatewayService) -> None:
    async with api_client(service) as client:
        await _fills(service, client, 2)
        db = service.journal._db  # a broker that gave no fill id
        db.execute("UPDATE fills SET fill_id = NULL")
        service.journal.commit_now()
        everything = (await client.get("/v1/fills")).json()
        second = await client.get(
            "/v1/fills", params={"after": everything[0]["fill_id"], "limit": 5}
        )
    assert everything[0]["fill_id"].startswith("journal-")
    assert second.json() == everything[1:]
