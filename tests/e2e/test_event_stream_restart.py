"""A strategy follows /v1/events of a real ``gateway serve`` while the gateway is stopped with
SIGTERM, then killed with kill -9, and restarted on the same state dir each time: the client
reconnects by itself with Last-Event-ID and gets every event of the journal's stream table
exactly once, in order. A SIGTERM is not held up by the open stream."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

from gateway.client import AsyncGatewayClient, Backoff, Event
from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess


def journal_stream(gw: GatewayProcess) -> list[tuple[int, str]]:
    uri = f"{(gw.state_dir / 'journal.sqlite3').resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return [tuple(r) for r in db.execute("SELECT seq, type FROM stream ORDER BY seq")]


async def trade(gw: GatewayProcess, prefix: str, fills: int) -> None:
    async with AsyncGatewayClient(gw.url, STRATEGY_TOKEN) as client:
        for n in range(3):
            side = ("buy", "sell")[n % 2]
            decision = await client.submit(f"{prefix}-{n}", "momentum", "AAPL", side, 1)
            assert decision.decision == "accepted", decision
        for _ in range(200):  # until the last fill is journaled
            if len(await client.fills()) >= fills:
                return
            await asyncio.sleep(0.02)


async def test_every_event_exactly_once_across_sigterm_and_kill_9(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()
    got: list[Event] = []

    async def follow() -> None:
        async with AsyncGatewayClient(gw.url, STRATEGY_TOKEN) as client:
            async for event in client.events(after=0, backoff=Backoff(0.05, 0.5)):
                got.append(event)

    follower = asyncio.create_task(follow())
    try:
        await trade(gw, "before", 3)
        started = time.monotonic()
        assert await asyncio.to_thread(gw.terminate) == 0
        assert time.monotonic() - started < 8  # the open stream did not hold the stop up
        await asyncio.to_thread(gw.start)
        await trade(gw, "after-term", 6)
        await asyncio.to_thread(gw.kill)  # kill -9: no goodbye on the stream
        await asyncio.to_thread(gw.start)
        await trade(gw, "after-kill", 9)
        expected: list[tuple[int, str]] = []
        for _ in range(300):
            expected = journal_stream(gw)
            if len(got) >= len(expected):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # nothing more (no double) arrives late
        assert [(e.id, e.type) for e in got] == expected
        decisions = [e.data.signal_id for e in got if e.type == "decision"]  # type: ignore[union-attr]
        assert decisions == [
            f"{p}-{n}" for p in ("before", "after-term", "after-kill") for n in range(3)
        ]
        assert sum(e.type == "fill" for e in got) == 9
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        gw.kill()
