"""A subscriber that stops reading is dropped once its buffer is full, while a fast one and
the pipeline go on untouched; the dropped one's stream ends, and it resumes from its last id
with nothing missed or doubled."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from gateway.client import AsyncGatewayClient, Backoff, Event
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import STRATEGY_TOKEN
from tests.integration.sse import serving_with_small_buffers
from tests.integration.test_client_events import stream_ids


def stalled_follower(url: str) -> socket.socket:
    """A client that asks for the whole stream, then reads nothing (tiny receive buffer)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    request = (
        f"GET /v1/events?after=0 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {STRATEGY_TOKEN}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"0\r\n\r\n"):  # the chunked answer's end: the stream ended
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


async def test_a_stalled_subscriber_is_dropped_alone(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(risk={"pre_trade": {"max_orders_per_second": 100_000}})
    service: GatewayService = await make_service(config)
    service.feed.capacity = 50
    async with (
        serving_with_small_buffers(service) as (url, small),
        AsyncGatewayClient(url, STRATEGY_TOKEN) as gw,
    ):
        fast: list[Event] = []

        async def follow() -> None:
            async for event in gw.events(after=0, backoff=Backoff(0.01, 0.05)):
                fast.append(event)

        follower = asyncio.create_task(follow())
        try:
            await stalled_then_resumed(service, gw, small, fast)
        finally:
            follower.cancel()


async def stalled_then_resumed(
    service: GatewayService, gw: AsyncGatewayClient, url: str, fast: list[Event]
) -> None:
    slow = stalled_follower(url)
    for _ in range(100):
        if service.feed.subscribers == 2:
            break
        await asyncio.sleep(0.01)
    latencies = []
    for n in range(400):
        started = time.perf_counter()
        decision = await gw.submit(f"slow-{n}", "momentum", "AAPL", ("buy", "sell")[n % 2], 1)
        latencies.append(time.perf_counter() - started)
        assert decision.decision == "accepted"
    for _ in range(300):
        service.engine.flush_order_updates()
        if len(fast) >= len(stream_ids(service)):
            break
        await asyncio.sleep(0.02)
    expected = stream_ids(service)
    assert [e.id for e in fast] == expected  # the fast one got everything, once
    assert service.feed.subscribers == 1  # the stalled one was dropped
    assert sorted(latencies)[int(len(latencies) * 0.99)] < 0.5  # nobody waited on it
    body = (await asyncio.to_thread(read_to_end, slow)).decode()
    slow.close()
    assert body.endswith("0\r\n\r\n")  # its stream ended
    seen = [int(i) for i in re.findall(r"^id: (\d+)$", body, re.MULTILINE)]
    assert seen == expected[: len(seen)] and len(seen) < len(expected)
    # It resumes from its last id: the rest, once.
    rest: list[int] = []
    async for event in gw.events(after=seen[-1]):
        rest.append(event.id)
        if len(rest) == len(expected) - len(seen):
            break
    assert seen + rest == expected
