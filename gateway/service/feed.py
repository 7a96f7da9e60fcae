"""The event feed behind GET /v1/events: one tailer per gateway fans the journal's new events
out to every subscriber.

The journal tells the feed after each commit (``notify``: sets an asyncio.Event, nothing
more, so the writer never waits). The tailer wakes, reads the newly committed rows once from
its own read-only connection (see ``gateway.store.events``), and hands them to each
subscriber's bounded buffer. A subscriber whose buffer would overflow is dropped: its stream
ends and its client resumes from the last id it got, read back from the journal. So a slow
subscriber costs the pipeline and the others nothing, and nothing lives only in memory.

A new subscriber registers first and backfills from the journal second (``backfill``, page
by page), then reads its buffer, skipping ids it already sent: an event committed while it
backfilled is in its buffer, one committed before is in the journal, and none is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection
from pathlib import Path

from gateway.store.events import EventLog, EventSource, StreamEvent
from gateway.store.schema import JournalUnavailable

log = logging.getLogger("gateway.service.feed")

BUFFER = 1000  # events a subscriber may have waiting before it is dropped
PAGE = 500  # rows per read of the journal
KEEPALIVE_S = 15.0
# After a commit wakes it, the tailer waits this long before reading, so a burst of commits
# (a signal commits two or three times) is one read and one wake-up per subscriber: what the
# pipeline pays for its followers is bounded by time, not by how many commits it makes.
COALESCE_S = 0.005


class SubscriptionEnded(Exception):
    """The subscriber fell behind and was dropped, or the gateway is stopping."""


class Subscription:
    def __init__(self, strategies: frozenset[str] | None, capacity: int, head: int):
        self.strategies = strategies
        self.head = head  # the last committed id when it registered ("from now" starts here)
        self.ended: str | None = None  # why it ended; None while it runs
        self._capacity = capacity
        self._events: deque[StreamEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None  # set while ``next`` waits

    def offer(self, wanted: list[StreamEvent]) -> None:
        """Take the events of a batch this subscriber follows (filtered by the feed)."""
        if self.ended is not None or not wanted:
            return
        if len(self._events) + len(wanted) > self._capacity:
            self.end("fell behind")
            return
        self._events.extend(wanted)
        self._wake()

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
            self._events.clear()  # a dropped subscriber holds no memory
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, timeout_s: float) -> list[StreamEvent]:
        """Every event waiting, in order; [] when ``timeout_s`` passed with none. Raises
        SubscriptionEnded once dropped or closed."""
        if not self._events and self.ended is None:
            # A bare future and a timer, not wait_for (a task per wait): with many
            # subscribers this runs once per subscriber for every batch of events.
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(max(timeout_s, 0), _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.ended is not None:
            raise SubscriptionEnded(self.ended)
        batch = list(self._events)
        self._events.clear()
        return batch


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventFeed:
    def __init__(
        self,
        journal: Path | Callable[[], EventSource],
        *,
        capacity: int = BUFFER,
        coalesce_s: float = COALESCE_S,
    ):
        """``journal``: the SQLite journal's path, or what opens another backend's event log
        (an active/standby pair's, in PostgreSQL)."""
        self._open: Callable[[], EventSource] = (
            (lambda: EventLog(journal)) if isinstance(journal, Path) else journal
        )
        self.capacity = capacity
        self.coalesce_s = coalesce_s
        self.keepalive_s = KEEPALIVE_S
        self._log: EventSource | None = None
        self._subs: set[Subscription] = set()
        self._last = 0  # the last id the tailer read
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def start(self) -> None:
        self._log = self._open()
        self._task = asyncio.create_task(self._tail(), name="event-feed")

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """End every stream, and take no new one (the gateway is stopping: streams never
        finish on their own)."""
        self._closed = True
        self._end_all("gateway stopping")

    def _end_all(self, why: str) -> None:
        for sub in list(self._subs):
            sub.end(why)
        self._subs.clear()

    def notify(self) -> None:
        """The journal committed (called by the writer after every commit: only an Event set,
        and not even that while nobody follows the stream)."""
        if self._subs:
            self._wake.set()

    # --- subscribers -------------------------------------------------------------------------

    def subscribe(self, strategies: frozenset[str] | None) -> Subscription:
        """Register before backfilling (see the module's docstring)."""
        reader = self._reader()
        head = reader.last_seq()
        if not self._subs:
            # Nobody followed: the tailer skipped what was committed meanwhile. From here on
            # it reads what comes after; the new subscriber backfills what came before.
            self._last = head
        sub = Subscription(strategies, self.capacity, head)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.end("unsubscribed")
        self._subs.discard(sub)

    def backfill(
        self, after: int, strategies: Collection[str] | None, limit: int = PAGE
    ) -> list[StreamEvent]:
        """One page of committed events after ``after``, from the journal."""
        return self._reader().events_after(after, limit, strategies)

    def _reader(self) -> EventSource:
        if self._log is None or self._closed:
            raise JournalUnavailable("the event feed is not running")
        return self._log

    # --- the tailer --------------------------------------------------------------------------

    async def _tail(self) -> None:
        while True:
            await self._wake.wait()
            if self.coalesce_s > 0:
                await asyncio.sleep(self.coalesce_s)
            self._wake.clear()
            if not self._subs:
                continue
            try:
                self._read_new()
            except JournalUnavailable as exc:
                # The subscribers resume from their last id once the journal reads again.
                log.error("event feed cannot read the journal: %s", exc)
                self._end_all("journal unreadable")

    def _read_new(self) -> None:
        reader = self._reader()
        while True:
            batch = reader.events_after(self._last, PAGE)
            if not batch:
                return
            self._last = batch[-1].seq
            # Filtered once per distinct filter, not once per subscriber.
            filtered: dict[frozenset[str] | None, list[StreamEvent]] = {None: batch}
            for sub in list(self._subs):
                wanted = filtered.get(sub.strategies)
                if wanted is None:
                    wanted = [e for e in batch if e.visible_to(sub.strategies)]
                    filtered[sub.strategies] = wanted
                sub.offer(wanted)
                if sub.ended is not None:
                    self._subs.discard(sub)
            if len(batch) < PAGE:
                return
