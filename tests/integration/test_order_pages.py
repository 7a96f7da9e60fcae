"""GET /v1/orders in pages: ``limit`` and ``after`` are optional; without them the answer is
every matching order, with them consecutive pages hold each order once, oldest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config import GatewayConfig
from tests.conftest import api_client, signal


async def test_pages_cover_every_order_once_in_order(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config())
    async with api_client(service) as client:
        for n in range(5):
            answer = await client.post("/v1/signals", json=signal(f"page-{n}", quantity=1))
            assert answer.json()["decision"] == "accepted"
        everything = (await client.get("/v1/orders", params={"status": "all"})).json()
        pages, after = [], None
        while True:
            params: dict[str, Any] = {"status": "all", "limit": 2}
            if after is not None:
                params["after"] = after
            page = (await client.get("/v1/orders", params=params)).json()
            if not page:
                break
            assert len(page) <= 2
            pages.append(page)
            after = page[-1]["client_order_id"]
        unknown = await client.get("/v1/orders", params={"status": "all", "after": "gw-nope"})
        zero = await client.get("/v1/orders", params={"limit": 0})
    assert len(everything) == 5
    assert [o["client_order_id"] for p in pages for o in p] == [
        o["client_order_id"] for o in everything
    ]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert unknown.status_code == 404 and unknown.json()["code"] == "order_not_found"
    assert zero.status_code == 422
