"""The demo's strategy manages what it sent: it follows its own events on the stream, rests a
limit order, moves it (PATCH) and cancels it (DELETE), and sees each change, and its fill from
the first step, arrive on the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal

from gateway.client import AsyncGatewayClient, Backoff, Event
from gateway.demo.strategies import plain
from gateway.models import FillRecord, Order


class Follower:
    """A strategy's event stream, followed in the background from the journal's start."""

    def __init__(self, gw: AsyncGatewayClient, strategy: str):
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow(gw, strategy), name="demo-follower")

    async def _follow(self, gw: AsyncGatewayClient, strategy: str) -> None:
        async for event in gw.events(after=0, strategy=strategy, backoff=Backoff(0.05, 0.5)):
            self.events.append(event)
            self._changed.set()

    async def wait_for(self, found: Callable[[Event], bool], timeout_s: float = 10.0) -> Event:
        """The first event (seen already or to come) for which ``found`` holds."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if found(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def order_event(
    client_order_id: str, status: str, limit: Decimal | None = None
) -> Callable[[Event], bool]:
    def found(event: Event) -> bool:
        data = event.data
        return (
            isinstance(data, Order)
            and data.client_order_id == client_order_id
            and data.status == status
            and (limit is None or data.limit_price == limit)
        )

    return found


def is_fill(event: Event) -> bool:
    return isinstance(event.data, FillRecord)


def order_line(event: Event) -> str:
    order = event.data
    assert isinstance(order, Order)
    limit = f" limit {order.limit_price:.2f}" if order.limit_price is not None else ""
    return f"order {order.status}: {order.side.value} {plain(order.quantity)} {order.symbol}{limit}"


def fill_line(event: Event) -> str:
    fill = event.data
    assert isinstance(fill, FillRecord)
    return f"fill: {fill.side.value} {plain(fill.quantity)} {fill.symbol} @ {fill.price:.2f}"
