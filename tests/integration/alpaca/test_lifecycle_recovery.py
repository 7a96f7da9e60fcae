"""Fetching the fills missed while the trading stream was down, where a cassette cannot say
it: more than one page of activities, nothing new to report, and a failed fetch that is asked
again after the next reconnect (scripted HTTP answers; the happy path's cassette is in
test_lifecycle_stream.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from alpaca_fake_http import Answer, ScriptedTransport

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import BrokerEvent, ConnectionEvent, OrderEvent
from tests.fakes.alpaca_streams import FakeDataStream, FakeTradingStream, order_json

Build = Callable[..., AlpacaBroker]
ORDER = "5b1f3a2c-7d4e-4f60-9a8b-0c1d2e3f0401"
ACTIVITIES = ("GET", "/v2/account/activities/FILL")
SINCE = datetime(2023, 11, 6, 15, 30, tzinfo=UTC)


class UrlTransport(ScriptedTransport):
    """ScriptedTransport that also keeps each request's full URL (the query matters here)."""

    def __init__(self, script: Any):
        super().__init__(script)
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.urls.append(request.url or "")
        return super().send(request, **kwargs)

    def queries(self, path: str) -> list[dict[str, list[str]]]:
        return [parse_qs(urlparse(u).query) for u in self.urls if urlparse(u).path == path]


def activity(cum: int, price: str = "100") -> dict[str, Any]:
    return {
        "activity_type": "FILL",
        "id": f"20231106103000{cum:03d}::act-{cum}",
        "order_id": ORDER,
        "cum_qty": str(cum),
        "qty": "1",
        "price": price,
        "leaves_qty": str(200 - cum),
        "side": "buy",
        "symbol": "AAPL",
        "transaction_time": f"2023-11-06T15:30:{cum % 60:02d}Z",
        "type": "partial_fill",
    }


def the_order(filled: int) -> dict[str, Any]:
    raw = order_json(ORDER, "sig-r", qty="200", status="partially_filled", filled_qty=str(filled))
    raw.update(order_type="limit", type="limit", limit_price="100", filled_avg_price="100")
    return raw


async def test_every_page_of_activities_is_read(make_broker: Build) -> None:
    pages = [[activity(c) for c in range(1, 101)], [activity(101)]]
    transport = UrlTransport(
        {
            ACTIVITIES: [Answer(body=page) for page in pages],
            ("GET", f"/v2/orders/{ORDER}"): [Answer(body=the_order(101))],
        }
    )
    events = await make_broker(transport=transport)._orders.recover(SINCE)
    first, second = transport.queries(ACTIVITIES[1])
    assert first["after"] == ["2023-11-06T15:30:00Z"] and first["direction"] == ["asc"]
    assert first["page_size"] == ["100"] and "page_token" not in first
    assert second["page_token"] == ["20231106103000100::act-100"]
    fills = [e.fill for e in events if e.fill is not None]
    assert len(fills) == 101 and sum(f.quantity for f in fills) == 101
    assert len({f.fill_id for f in fills}) == 101


async def test_nothing_new_asks_no_order(make_broker: Build) -> None:
    transport = UrlTransport({ACTIVITIES: [Answer(body=[activity(1), activity(2)])]})
    broker = make_broker(transport=transport)
    broker._orders.ledger.fill(the_order(2))  # the stream reported both before the drop
    assert await broker._orders.recover(SINCE) == []
    assert transport.count("GET") == 1  # the activities only


async def next_connection(events: AsyncIterator[BrokerEvent], seen: list[OrderEvent]) -> bool:
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, ConnectionEvent):
                return event.connected
            if isinstance(event, OrderEvent):
                seen.append(event)
    raise AssertionError("events ended")


async def test_a_failed_fetch_is_asked_again_after_the_next_reconnect(
    make_broker: Build, trading_fake: FakeTradingStream, data_fake: FakeDataStream
) -> None:
    transport = UrlTransport(
        {
            ACTIVITIES: [Answer(status=503, body="upstream down"), Answer(body=[activity(5)])],
            ("GET", f"/v2/orders/{ORDER}"): [Answer(body=the_order(5))],
        }
    )
    broker = make_broker(
        transport=transport, trading_stream_url=trading_fake.url, data_stream_url=data_fake.url
    )
    try:
        events = broker.events()
        await broker.connect()
        seen: list[OrderEvent] = []
        assert await next_connection(events, seen) is True
        for _ in range(2):
            await trading_fake.drop()
            assert await next_connection(events, seen) is False
            assert await next_connection(events, seen) is True
    finally:
        await broker.close()
    first, second = transport.queries(ACTIVITIES[1])
    assert first["after"] == second["after"]  # the gap still counts from the first drop
    assert [(e.fill.quantity, e.fill.fill_id) for e in seen if e.fill] == [
        (Decimal(5), f"{ORDER}:5")
    ]
