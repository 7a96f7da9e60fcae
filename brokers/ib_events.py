"""The IB adapter's event stream, fanned out to every consumer.

ib_async reports through plain callbacks; the adapter turns them into ``BrokerEvent``s and
publishes them here without awaiting. The first ``subscribe()`` gets every event since the
adapter was built: the gateway connects, syncs, and only then starts consuming, and a fill
during that sync, or the first ``ConnectionEvent``, must not be lost. Every later subscriber
gets its own stream from the moment it subscribes. ``close()`` ends all streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from brokers.base import BrokerEvent


class EventFanout:
    def __init__(self) -> None:
        self._backlog: asyncio.Queue[BrokerEvent | None] | None = asyncio.Queue()
        self._queues: list[asyncio.Queue[BrokerEvent | None]] = [self._backlog]

    def subscribe(self) -> AsyncIterator[BrokerEvent]:
        if self._backlog is not None:
            queue, self._backlog = self._backlog, None
        else:
            queue = asyncio.Queue()
            self._queues.append(queue)
        return self._drain(queue)

    def publish(self, event: BrokerEvent) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    def close(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)

    async def _drain(self, queue: asyncio.Queue[BrokerEvent | None]) -> AsyncIterator[BrokerEvent]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with contextlib.suppress(ValueError):
                self._queues.remove(queue)
