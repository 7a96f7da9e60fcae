"""GET /v1/events over a real HTTP connection: replay from the journal then live, exactly once
and in order across a disconnect; from now without an id; the Last-Event-ID header wins over
?after=; a keepalive while idle; bound tokens see their strategies and every state event;
every bad query is a 422 naming it, an id from another journal a 409."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, MOMENTUM_TOKEN, signal
from tests.integration.sse import Frame, frames, headers, serving


def journal_events(service: GatewayService) -> list[tuple[int, str]]:
    service.journal.commit_now()
    db = sqlite3.connect(service.journal.path)
    try:
        return [tuple(row) for row in db.execute("SELECT seq, type FROM stream ORDER BY seq")]
    finally:
        db.close()


async def read(response: httpx.Response, n: int, timeout_s: float = 10.0) -> list[Frame]:
    """The next ``n`` events (comments skipped), from one parser per response."""
    got: list[Frame] = []
    if not hasattr(response, "frames"):
        response.frames = frames(response)  # type: ignore[attr-defined]

    async def take() -> None:
        async for frame in response.frames:  # type: ignore[attr-defined]
            if frame.event is not None:  # neither a comment nor a bare position
                got.append(frame)
                if len(got) == n:
                    return

    await asyncio.wait_for(take(), timeout_s)
    return got


async def settled(service: GatewayService, client: httpx.AsyncClient, *ids: str) -> None:
    """Send these signals and wait until their fills are journaled."""
    for signal_id in ids:
        assert (await client.post("/v1/signals", json=signal(signal_id))).status_code == 200
    for _ in range(200):
        service.engine.flush_order_updates()
        if len(service.journal.fills()) >= len(ids):
            return
        await asyncio.sleep(0.01)


async def test_replay_then_live_then_resume_after_a_disconnect(service: GatewayService) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        await settled(service, c, "e-1")
        before = journal_events(service)
        async with c.stream("GET", "/v1/events", params={"after": 0}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await read(stream, len(before))
            assert [(f.id, f.event) for f in first] == before
            await settled(service, c, "e-2")
            live = await read(stream, 1)  # the next decision, live
            assert live[0].event == "decision" and live[0].data["signal_id"] == "e-2"
        # Disconnected mid-stream; more happens; the client resumes from its last id.
        await settled(service, c, "e-3")
        resume = {"Last-Event-ID": str(live[0].id)}
        everything = journal_events(service)
        missed = [e for e in everything if e[0] > live[0].id]
        async with c.stream("GET", "/v1/events", headers=resume) as stream:
            again = await read(stream, len(missed))
        assert [(f.id, f.event) for f in again] == missed
        assert [f.id for f in first + live + again] == [seq for seq, _ in everything]
        payloads = {f.id: f.data for f in first + live + again}
        fills = [f.data for f in first + live + again if f.event == "fill"]
        assert fills == [r.model_dump(mode="json") for r in service.journal.fills()]
        assert payloads[1]["state"] == "active"


async def test_without_an_id_the_stream_starts_now(service: GatewayService) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        await settled(service, c, "n-1")
        head = journal_events(service)[-1][0]
        async with c.stream("GET", "/v1/events") as stream:
            parsed = frames(stream)
            position = await anext(parsed)  # a position to resume from, before any event
            assert (position.id, position.event, position.data) == (head, None, None)
            stream.frames = parsed  # type: ignore[attr-defined]
            await settled(service, c, "n-2")
            [first] = await read(stream, 1)
        assert first.id == head + 1 and first.data["signal_id"] == "n-2"


async def test_the_last_event_id_header_wins_over_after(service: GatewayService) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        await settled(service, c, "h-1", "h-2")
        events = journal_events(service)
        async with c.stream(
            "GET", "/v1/events", params={"after": 0}, headers={"Last-Event-ID": "3"}
        ) as stream:
            got = await read(stream, len(events) - 3)
        assert [f.id for f in got] == [seq for seq, _ in events[3:]]


async def test_a_keepalive_comes_while_nothing_happens(service: GatewayService) -> None:
    service.feed.keepalive_s = 0.1
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        async with c.stream("GET", "/v1/events") as stream:

            async def first_comment() -> str | None:
                async for frame in frames(stream):
                    if frame.comment is not None:
                        return frame.comment
                return None

            assert await asyncio.wait_for(first_comment(), 5) == "keepalive"


async def test_a_bound_token_follows_its_strategies_and_every_state(
    service: GatewayService,
) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        await c.post("/v1/signals", json=signal("b-1", strategy="momentum"))
        await c.post("/v1/signals", json=signal("b-2", strategy="meanrev"))
        await c.post("/v1/halt", json={"reason": "lunch"})
        await c.post("/v1/signals", json=signal("b-3", strategy="meanrev"))
        service.journal.commit_now()
        db = sqlite3.connect(service.journal.path)
        rows = list(db.execute("SELECT seq, type, strategy FROM stream"))
        db.close()
        expected = [seq for seq, kind, strategy in rows if kind == "state" or strategy == "meanrev"]
        async with httpx.AsyncClient(base_url=url, headers=headers(MEANREV_TOKEN)) as bound:
            async with bound.stream("GET", "/v1/events", params={"after": 0}) as stream:
                got = await read(stream, len(expected))
            assert [f.id for f in got] == expected
            assert {f.data.get("strategy") for f in got if f.event in ("order", "fill")} == {
                "meanrev"
            }
            assert [f.data["signal_id"] for f in got if f.event == "decision"] == ["b-2", "b-3"]
            # Another strategy's events read as if it had none: the state events alone.
            params = {"after": 0, "strategy": "momentum"}
            async with bound.stream("GET", "/v1/events", params=params) as stream:
                states = [seq for seq, kind, _ in rows if kind == "state"]
                only = await read(stream, len(states))
                assert [f.id for f in only] == states
                assert {f.event for f in only} == {"state"}
        # The unbound token narrows to one strategy with ?strategy=.
        async with c.stream(
            "GET", "/v1/events", params={"after": 0, "strategy": "momentum"}
        ) as stream:
            decisions: list[Any] = []
            for f in await read(stream, 4):
                if f.event == "decision":
                    decisions.append(f.data["signal_id"])
            assert decisions == ["b-1"]


async def test_bad_queries_are_refused_naming_the_field(service: GatewayService) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        cases: list[tuple[dict[str, str], dict[str, str], str]] = [
            ({"after": "-1"}, {}, "query.after"),
            ({"after": "abc"}, {}, "query.after"),
            ({"after": str(2**64)}, {}, "query.after"),
            ({"strategy": ""}, {}, "query.strategy"),
            ({"strategy": "x" * 65}, {}, "query.strategy"),
            ({"since": "3"}, {}, "query.since"),
            ({}, {"Last-Event-ID": "x"}, "header.Last-Event-ID"),
            ({}, {"Last-Event-ID": "-5"}, "header.Last-Event-ID"),
        ]
        for params, extra, field in cases:
            answer = await c.get("/v1/events", params=params, headers=extra)
            assert answer.status_code == 422, (params, extra)
            assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
        beyond = await c.get("/v1/events", params={"after": "999999"})
        assert beyond.status_code == 409 and beyond.json()["code"] == "event_id_unknown"
        anonymous = await httpx.AsyncClient(base_url=url).get("/v1/events")
        assert anonymous.status_code == 401
    assert service.feed.subscribers == 0


async def test_fifty_idle_subscribers_and_the_pipeline(service: GatewayService) -> None:
    async with serving(service) as url:
        clients = [httpx.AsyncClient(base_url=url, headers=headers()) for _ in range(50)]
        streams = [
            await c.send(
                c.build_request("GET", "/v1/events", params={"strategy": "idle"}), stream=True
            )
            for c in clients
        ]
        try:
            assert all(s.status_code == 200 for s in streams)
            assert service.feed.subscribers == 50
            async with httpx.AsyncClient(base_url=url, headers=headers()) as c:
                await settled(service, c, *(f"i-{n}" for n in range(20)))
            assert len(service.journal.fills()) == 20
            assert service.feed.subscribers == 50  # none fell behind
        finally:
            for s, c in zip(streams, clients, strict=True):
                await s.aclose()
                await c.aclose()
        for _ in range(100):
            if service.feed.subscribers == 0:
                break
            await asyncio.sleep(0.02)
        assert service.feed.subscribers == 0  # a disconnect unsubscribes


async def test_fills_route(service: GatewayService) -> None:
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        await settled(service, c, "f-1")
        await c.post("/v1/signals", json=signal("f-2", strategy="meanrev", symbol="MSFT"))
        await c.post("/v1/signals", json=signal("f-3", strategy="meanrev"))
        for _ in range(100):
            service.engine.flush_order_updates()
            if len(service.journal.fills()) == 3:
                break
            await asyncio.sleep(0.01)
        every = (await c.get("/v1/fills")).json()
        assert [f["signal_id"] for f in every] == ["f-1", "f-2", "f-3"]  # oldest first
        assert every[0]["quantity"] == 10.0 and isinstance(every[0]["price"], float)
        mine = (await c.get("/v1/fills", params={"strategy": "meanrev", "symbol": "AAPL"})).json()
        assert [f["signal_id"] for f in mine] == ["f-3"]
        bound = httpx.AsyncClient(base_url=url, headers=headers(MOMENTUM_TOKEN))
        async with bound:
            assert [f["signal_id"] for f in (await bound.get("/v1/fills")).json()] == ["f-1"]
            other = await bound.get("/v1/fills", params={"strategy": "meanrev"})
            assert other.status_code == 200 and other.json() == []  # as if it had none
        for params, field in (
            ({"limit": "0"}, "query.limit"),  # a page holds one fill at least
            ({"limt": "3"}, "query.limt"),
            ({"symbol": "A A"}, "query.symbol"),
            ({"strategy": "bad name"}, "query.strategy"),
        ):
            answer = await c.get("/v1/fills", params=params)
            assert answer.status_code == 422
            assert [e["field"] for e in answer.json()["errors"]] == [field]
