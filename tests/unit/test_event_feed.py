"""The event feed: woken by commits, one read per wake-up fanned out to every subscriber's
bounded buffer; a subscriber that falls behind is dropped without touching the others; a new
subscriber registers, backfills and switches over with nothing missed or doubled; nobody
following costs the writer nothing but a check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.http.routes.events import frames
from gateway.service.feed import EventFeed, SubscriptionEnded
from gateway.store.journal import Journal, JournalUnavailable


def _refusal(journal: Journal, n: int, strategy: str = "momentum") -> None:
    journal.record_refusal(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{}",
        strategy=strategy,
        symbol="AAPL",
        decision_json=f'{{"n":{n}}}',
        outcome="rejected",
    )


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[tuple[Journal, EventFeed]]:
    journal = Journal(tmp_path / "journal.db")
    feed = EventFeed(journal.path, capacity=10, coalesce_s=0)
    journal.on_commit(feed.notify)
    feed.start()
    try:
        yield journal, feed
    finally:
        await feed.stop()
        journal.close()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_commits_reach_every_subscriber_once_in_order(
    wired: tuple[Journal, EventFeed],
) -> None:
    journal, feed = wired
    a, b = feed.subscribe(None), feed.subscribe(frozenset({"meanrev"}))
    for n in range(3):
        _refusal(journal, n, "momentum" if n != 1 else "meanrev")
    await _settle()
    assert [e.data for e in await a.next(1)] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert [e.data for e in await b.next(1)] == ['{"n":1}']
    assert await a.next(0.01) == []  # nothing twice


async def test_a_subscriber_that_falls_behind_is_dropped_alone(
    wired: tuple[Journal, EventFeed],
) -> None:
    journal, feed = wired
    slow, fast = feed.subscribe(None), feed.subscribe(None)
    got: list[str] = []
    for n in range(25):
        _refusal(journal, n)
        await _settle()
        got += [e.data for e in await fast.next(1)]
    assert len(got) == 25
    assert slow.ended == "fell behind" and feed.subscribers == 1
    with pytest.raises(SubscriptionEnded):
        await slow.next(1)


async def test_without_subscribers_a_commit_does_not_wake_the_tailer(
    wired: tuple[Journal, EventFeed],
) -> None:
    journal, feed = wired
    _refusal(journal, 1)
    assert not feed._wake.is_set()
    sub = feed.subscribe(None)
    assert sub.head == 1  # from now: after what was committed before it came
    _refusal(journal, 2)
    assert feed._wake.is_set()
    await _settle()
    assert [e.data for e in await sub.next(1)] == ['{"n":2}']


async def test_backfill_then_live_misses_nothing_and_doubles_nothing(
    wired: tuple[Journal, EventFeed],
) -> None:
    journal, feed = wired
    feed.capacity = 10_000
    for n in range(1200):  # more than two pages
        _refusal(journal, n)
    sub = feed.subscribe(None)
    stream = frames(feed, sub, 0)
    seen: list[int] = []
    # Commits land while the backfill pages are read: they reach the buffer, and some are
    # read by the backfill too.
    async for chunk in stream:
        seen += [int(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")]
        if len(seen) < 1300:
            _refusal(journal, 10_000 + len(seen))
            await _settle()
        if len(seen) >= 1200 + 4:
            break
    await stream.aclose()
    assert seen == list(range(1, len(seen) + 1))
    assert feed.subscribers == 0  # the stream's end unsubscribes


async def test_keepalive_comes_when_nothing_happens(wired: tuple[Journal, EventFeed]) -> None:
    _, feed = wired
    feed.keepalive_s = 0.05
    sub = feed.subscribe(None)
    stream = frames(feed, sub, None)
    assert await anext(stream) == f"id: {sub.head}\n\n"  # where a reconnect resumes
    assert await asyncio.wait_for(anext(stream), 1) == ": keepalive\n\n"
    await stream.aclose()


async def test_stop_ends_every_stream_and_takes_no_new_one(
    wired: tuple[Journal, EventFeed],
) -> None:
    _, feed = wired
    stream = frames(feed, feed.subscribe(None), None)
    await anext(stream)  # the position
    waiting = asyncio.ensure_future(anext(stream))
    await _settle()
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(JournalUnavailable):
        feed.subscribe(None)


async def test_a_burst_of_commits_is_one_read_and_one_wake_up(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    feed = EventFeed(journal.path, coalesce_s=0.05)
    journal.on_commit(feed.notify)
    feed.start()
    try:
        sub = feed.subscribe(None)
        reads = 0
        reader = feed._reader()
        real = reader.events_after

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal reads
            reads += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        reader.events_after = counted  # type: ignore[method-assign]
        for n in range(5):
            _refusal(journal, n)
            await asyncio.sleep(0)  # the tailer gets its turn between commits
        batch = await sub.next(1)
        assert [e.data for e in batch] == [f'{{"n":{n}}}' for n in range(5)]
        assert reads == 1
    finally:
        await feed.stop()
        journal.close()
