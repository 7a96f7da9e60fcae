"""The client follows the event stream: typed events, exactly once and in order, riding out a
dropped connection (resuming with Last-Event-ID, from its position even before any event
came); refusals raise; fills(); the sync client too."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.client import (
    AsyncGatewayClient,
    Backoff,
    Event,
    GatewayClient,
    GatewayClientError,
    StateChange,
)
from gateway.models import Decision, FillRecord, Order
from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, STRATEGY_TOKEN
from tests.integration.sse import serving

FAST = Backoff(first_s=0.01, max_s=0.05)


def stream_ids(service: GatewayService) -> list[int]:
    service.journal.commit_now()
    db = sqlite3.connect(service.journal.path)
    try:
        return [row[0] for row in db.execute("SELECT seq FROM stream ORDER BY seq")]
    finally:
        db.close()


async def take(events: AsyncIterator[Event], n: int, timeout_s: float = 10.0) -> list[Event]:
    got: list[Event] = []

    async def run() -> None:
        async for event in events:
            got.append(event)
            if len(got) == n:
                return

    await asyncio.wait_for(run(), timeout_s)
    return got


async def filled(service: GatewayService, gw: AsyncGatewayClient, *ids: str) -> None:
    before = len(service.journal.fills())
    for signal_id in ids:
        await gw.submit(signal_id, "momentum", "AAPL", "buy", 1)
    for _ in range(200):
        service.engine.flush_order_updates()
        if len(service.journal.fills()) >= before + len(ids):
            return
        await asyncio.sleep(0.01)


async def test_typed_events_once_in_order_across_dropped_connections(
    service: GatewayService,
) -> None:
    async with serving(service) as url, AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
        await filled(service, gw, "c-1")
        events = gw.events(after=0, backoff=FAST)
        got = await take(events, len(stream_ids(service)))
        for n in range(3):
            service.feed._end_all("fell behind")  # the gateway drops the connection
            await filled(service, gw, f"c-{n + 2}")
        expected = stream_ids(service)
        got += await take(events, len(expected) - len(got))
        await events.aclose()
        assert [e.id for e in got] == expected
        kinds = {e.type: type(e.data) for e in got}
        assert kinds == {
            "state": StateChange,
            "decision": Decision,
            "order": Order,
            "fill": FillRecord,
        }
        fills = [e.data for e in got if e.type == "fill"]
        assert fills == await gw.fills()
        assert fills == service.journal.fills()
    assert service.feed.subscribers == 0


async def test_from_now_a_reconnect_before_any_event_misses_nothing(
    service: GatewayService,
) -> None:
    async with serving(service) as url, AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
        head = stream_ids(service)[-1]
        events = gw.events(backoff=FAST)
        first = asyncio.ensure_future(anext(events))
        for _ in range(100):  # connected: the stream gave its position
            if service.feed.subscribers:
                break
            await asyncio.sleep(0.01)
        service.feed._end_all("fell behind")
        await filled(service, gw, "now-1")  # committed while it reconnects
        event = await asyncio.wait_for(first, 10)
        await events.aclose()
        assert event.id == head + 1 and isinstance(event.data, Decision)
        assert event.data.signal_id == "now-1"


async def test_refusals_raise_instead_of_reconnecting(service: GatewayService) -> None:
    async with serving(service) as url:
        async with AsyncGatewayClient(url, "not-a-token") as stranger:
            with pytest.raises(GatewayClientError) as info:
                await anext(stranger.events(backoff=FAST))
            assert info.value.status_code == 401
        async with AsyncGatewayClient(url, MEANREV_TOKEN) as bound:
            assert await bound.fills(strategy="momentum") == []
        async with AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
            with pytest.raises(GatewayClientError) as info:
                await anext(gw.events(after=10**9, backoff=FAST))
            assert info.value.status_code == 409 and info.value.code == "event_id_unknown"
            with pytest.raises(GatewayClientError) as info:
                await gw.fills(strategy="bad name")
            assert info.value.status_code == 422


async def test_the_sync_client_follows_and_reads_fills(service: GatewayService) -> None:
    async with serving(service) as url, AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
        await filled(service, gw, "s-1", "s-2")
        expected = stream_ids(service)

        def follow() -> tuple[list[int], list[Any]]:
            with GatewayClient(url, STRATEGY_TOKEN) as sync:
                ids = []
                for event in sync.events(after=0, backoff=FAST):
                    ids.append(event.id)
                    if len(ids) == len(expected):
                        break
                return ids, sync.fills(symbol="AAPL")

        ids, fills = await asyncio.wait_for(asyncio.to_thread(follow), 20)
        assert ids == expected
        assert [f.signal_id for f in fills] == ["s-1", "s-2"]


def test_the_backoff_doubles_up_to_its_bound_and_resets() -> None:
    wait = Backoff(first_s=0.1, max_s=1.0)
    delays = [wait.next_s() for _ in range(50)]
    assert all(0.05 <= d <= 1.0 for d in delays)
    assert max(delays[:2]) <= 0.2 and min(delays[10:]) >= 0.5
    wait.reset()
    assert wait.next_s() <= 0.1
