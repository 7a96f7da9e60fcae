"""Shared bits of the IB adapter tests (constants and an event waiter); fixtures are in
``conftest.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from brokers.base import BrokerEvent, ConnectionEvent, OrderEvent, QuoteEvent
from brokers.ib.broker import IBBroker

ACCOUNT = "DU1234567"
# Short timeouts and backoff: the fake answers at once, so these only bound failures.
FAST: dict[str, Any] = {
    "connect_timeout": 3.0,
    "request_timeout": 2.0,
    "ack_timeout": 2.0,
    "quote_timeout": 0.5,
    "cancel_timeout": 0.5,
    "cancel_poll_s": 0.05,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
}

MakeBroker = Callable[..., Awaitable[IBBroker]]


async def next_event(
    stream: Any, match: Callable[[BrokerEvent], bool], within_s: float = 3.0
) -> BrokerEvent:
    """The first event of ``stream`` (an ``events()`` iterator) that ``match``es."""

    async def scan() -> BrokerEvent:
        async for event in stream:
            if match(event):
                return event  # type: ignore[no-any-return]
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(scan(), within_s)


def is_connection(connected: bool) -> Callable[[BrokerEvent], bool]:
    return lambda e: isinstance(e, ConnectionEvent) and e.connected is connected


def is_order(client_order_id: str, status: str) -> Callable[[BrokerEvent], bool]:
    return lambda e: (
        isinstance(e, OrderEvent)
        and e.order.client_order_id == client_order_id
        and e.order.status == status
    )


def is_quote(symbol: str) -> Callable[[BrokerEvent], bool]:
    return lambda e: isinstance(e, QuoteEvent) and e.quote.symbol == symbol


_markers = iter(range(1, 1_000_000))


async def events_until_marker(tws: Any, broker: IBBroker, stream: Any) -> list[BrokerEvent]:
    """Every event of ``stream`` up to a marker quote pushed now (on a symbol of its own, with
    a bid it never had before): what the fake TWS sent before it has then reached the
    stream."""
    if "MARK" not in tws.state.quotes:
        tws.set_quote("MARK", 50.0, 50.5)
        await broker.quote("MARK")
    bid = 50.0 + next(_markers) / 1000
    tws.set_quote("MARK", bid, 50.5)
    seen: list[BrokerEvent] = []

    def marker(event: BrokerEvent) -> bool:
        seen.append(event)
        return isinstance(event, QuoteEvent) and float(event.quote.bid) == bid

    await next_event(stream, marker)
    return seen
