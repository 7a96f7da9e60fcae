"""A gateway's API served by a real uvicorn in the test's own loop (httpx's ASGITransport
buffers a whole answer, so it cannot follow a stream), and an SSE reader for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, BOUND_TOKENS, STRATEGY_TOKEN


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: Any
    comment: str | None = None


def _listener(send_buffer: int | None = None) -> socket.socket:
    # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say they are TCP.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if send_buffer is not None:
        # Accepted sockets inherit it: a client that stops reading stalls the server's writes
        # after a few kilobytes instead of the megabytes loopback would otherwise buffer.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    listener.bind(("127.0.0.1", 0))
    return listener


def _url(listener: socket.socket) -> str:
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serving_on(
    service: GatewayService, *listeners: socket.socket
) -> AsyncIterator[list[str]]:
    app = create_app(
        service, Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN, bound=BOUND_TOKENS)
    )
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=list(listeners)))
    for _ in range(500):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield [_url(listener) for listener in listeners]
    finally:
        service.feed.close()  # as GatewayServer does: streams end before the server waits
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        for listener in listeners:
            listener.close()


@contextlib.asynccontextmanager
async def serving(service: GatewayService) -> AsyncIterator[str]:
    """The service's API on a free port; yields its base URL."""
    async with serving_on(service, _listener()) as [url]:
        yield url


@contextlib.asynccontextmanager
async def serving_with_small_buffers(service: GatewayService) -> AsyncIterator[tuple[str, str]]:
    """The API on two ports: a normal one, and one whose connections have a tiny send buffer
    (for a client that stops reading)."""
    async with serving_on(service, _listener(), _listener(4096)) as [url, small]:
        yield url, small


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
