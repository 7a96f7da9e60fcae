"""A gateway's API served by a real uvicorn in the test's own loop (httpx's ASGITransport
buffers a whole answer, so it cannot follow a stream), and an SSE reader for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, BOUND_TOKENS, STRATEGY_TOKEN, free_port


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: Any
    comment: str | None = None


@contextlib.asynccontextmanager
async def serving(service: GatewayService) -> AsyncIterator[str]:
    """The service's API on a free port; yields its base URL."""
    app = create_app(
        service, Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN, bound=BOUND_TOKENS)
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        service.feed.close()  # as GatewayServer does: streams end before the server waits
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Parse an event stream as it arrives (comments too, as frames with ``comment``)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield Frame(
                    int(fields["id"]) if "id" in fields else None,
                    fields.get("event"),
                    json.loads(fields["data"]) if "data" in fields else None,
                )
                fields = {}
            continue
        if line.startswith(":"):
            yield Frame(None, None, None, comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def headers(token: str = STRATEGY_TOKEN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}
