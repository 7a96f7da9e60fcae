"""Broker events fanned out to every consumer, shared by the adapters.

Adapters publish ``BrokerEvent``s here without awaiting (vendor callbacks, stream readers); each
``events()`` caller drains its own queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from brokers.base import BrokerEvent


class EventFanout:
    """Every ``events()`` consumer gets every event from the moment it subscribes; the first
    one also gets what was published before (the gateway connects and syncs before it starts
    consuming: the first ConnectionEvent, or a fill during the sync, must not be lost).
    ``close()`` ends every stream."""

    def __init__(self) -> None:
        self._backlog: asyncio.Queue[BrokerEvent | None] | None = asyncio.Queue()
        self._queues: list[asyncio.Queue[BrokerEvent | None]] = [self._backlog]
        self._closed = False

    def subscribe(self) -> AsyncIterator[BrokerEvent]:
        if self._backlog is not None:
            queue, self._backlog = self._backlog, None
        else:
            queue = asyncio.Queue()
            self._queues.append(queue)
            if self._closed:
                queue.put_nowait(None)
        return self._drain(queue)

    def publish(self, event: BrokerEvent) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(None)

    async def _drain(self, queue: asyncio.Queue[BrokerEvent | None]) -> AsyncIterator[BrokerEvent]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with contextlib.suppress(ValueError):
                self._queues.remove(queue)
