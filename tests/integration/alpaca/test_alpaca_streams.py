"""The adapter's websockets against local fakes that speak Alpaca's protocols
(tests/fakes/alpaca_streams.py): fills, quotes, drops and reconnects, the 406 limit, close."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import TypeVar

import pytest
from alpaca_helpers import KEY, SECRET

from brokers.alpaca.broker import AlpacaBroker
from brokers.alpaca.streams import Backoff
from brokers.base import BrokerEvent, ConnectionEvent, OrderEvent, OrderStatus, QuoteEvent
from brokers.errors import BrokerUnavailable
from tests.fakes.alpaca_streams import FakeDataStream, FakeTradingStream, order_json

E = TypeVar("E", ConnectionEvent, OrderEvent, QuoteEvent)
Build = Callable[..., AlpacaBroker]
OID = "904837e3-3b76-47ec-b432-046db621571b"


async def next_of(events: AsyncIterator[BrokerEvent], kind: type[E], within_s: float = 10.0) -> E:
    """The next event of ``kind``, skipping others (a hang fails the test, not the suite)."""
    async with asyncio.timeout(within_s):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"events ended before a {kind.__name__}")


async def test_connect_then_fills_arrive_as_order_events(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    assert streaming_broker.connected
    assert (await next_of(events, ConnectionEvent)).connected is True

    await trading_fake.send_update("new", order_json(OID, "sig-7", qty="10", status="new"))
    await trading_fake.send_update(
        "partial_fill",
        order_json(
            OID,
            "sig-7",
            qty="10",
            status="partially_filled",
            filled_qty="4",
            filled_avg_price="190.1",
        ),
        qty="4",
        price="190.1",
        position_qty="4",
        execution_id="exec-1",
        timestamp="2023-11-06T15:31:02.123456789Z",
    )
    await trading_fake.send_update(
        "fill",
        order_json(
            OID, "sig-7", qty="10", status="filled", filled_qty="10", filled_avg_price="190.16"
        ),
        qty="6",
        price="190.2",
        position_qty="10",
        execution_id="exec-2",
    )

    new = await next_of(events, OrderEvent)
    assert new.order.status is OrderStatus.NEW and new.fill is None and new.reason is None
    partial = await next_of(events, OrderEvent)
    assert partial.order.status is OrderStatus.PARTIALLY_FILLED
    assert partial.fill is not None
    assert (partial.fill.quantity, partial.fill.price) == (Decimal(4), Decimal("190.1"))
    assert partial.fill.fill_id == "exec-1" and partial.fill.client_order_id == "sig-7"
    assert partial.fill.ts.isoformat() == "2023-11-06T15:31:02.123456+00:00"
    filled = await next_of(events, OrderEvent)
    assert filled.order.status is OrderStatus.FILLED and filled.order.filled_quantity == 10
    assert filled.fill is not None and filled.fill.quantity == 6
    assert filled.fill.broker_order_id == OID


async def test_rejections_and_cancels_carry_status_and_reason(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    await trading_fake.send_update("rejected", order_json(OID, "sig-8", status="rejected"))
    await trading_fake.send_update("canceled", order_json(OID, "sig-9", status="canceled"))
    rejected = await next_of(events, OrderEvent)
    assert rejected.order.status is OrderStatus.REJECTED and rejected.reason == "rejected"
    canceled = await next_of(events, OrderEvent)
    assert canceled.order.status is OrderStatus.CANCELED and canceled.fill is None


async def test_a_malformed_update_is_logged_and_the_stream_stays_up(
    streaming_broker: AlpacaBroker,
    trading_fake: FakeTradingStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    broken = order_json(OID, "sig-x")
    del broken["qty"]
    await trading_fake.send_update("new", broken)
    await trading_fake.send_update("new", order_json(OID, "sig-ok"))
    assert (await next_of(events, OrderEvent)).order.client_order_id == "sig-ok"
    assert "trade update not understood" in caplog.text
    assert streaming_broker.connected


async def test_quotes_arrive_for_symbols_subscribed_before_and_after_connect(
    streaming_broker: AlpacaBroker, data_fake: FakeDataStream
) -> None:
    events = streaming_broker.events()
    streaming_broker.subscribe_quotes(["aapl"])
    await streaming_broker.connect()
    await data_fake.wait_subscribed("AAPL")
    await data_fake.send_quote("AAPL", 190.85, 190.88)
    quote = (await next_of(events, QuoteEvent)).quote
    assert (quote.symbol, quote.bid, quote.ask) == ("AAPL", Decimal("190.85"), Decimal("190.88"))
    assert quote.ts.tzinfo is not None and abs(time.time() - quote.ts.timestamp()) < 5

    streaming_broker.subscribe_quotes(["MSFT", "AAPL"])  # only MSFT is new: one more subscribe
    await data_fake.wait_subscribed("AAPL", "MSFT")
    await data_fake.send_quote("MSFT", 360.1, 360.3)
    assert (await next_of(events, QuoteEvent)).quote.symbol == "MSFT"
    assert data_fake.subscribe_messages == [["AAPL"], ["MSFT"]]
    assert data_fake.feeds_seen == ["iex"]


async def test_sip_feed_is_asked_for_when_configured(
    make_broker: Build, trading_fake: FakeTradingStream, data_fake: FakeDataStream
) -> None:
    broker = make_broker(
        feed="sip", trading_stream_url=trading_fake.url, data_stream_url=data_fake.url
    )
    try:
        await broker.connect()
    finally:
        await broker.close()
    assert data_fake.feeds_seen == ["sip"]


async def test_a_drop_is_reported_before_any_reconnect_wait(
    make_broker: Build, trading_fake: FakeTradingStream, data_fake: FakeDataStream
) -> None:
    # An hour of backoff: a report that waited for the reconnect would never come in time.
    broker = make_broker(
        trading_stream_url=trading_fake.url,
        data_stream_url=data_fake.url,
        reconnect_initial_s=3600.0,
        reconnect_max_s=3600.0,
    )
    events = broker.events()
    try:
        await broker.connect()
        assert (await next_of(events, ConnectionEvent)).connected
        await data_fake.drop()
        down = await next_of(events, ConnectionEvent)
        assert down.connected is False and "data" in down.reason
        assert not broker.connected  # quotes are stale from now on
    finally:
        await broker.close()


async def test_data_drop_then_reconnect_resubscribes(
    streaming_broker: AlpacaBroker, data_fake: FakeDataStream
) -> None:
    events = streaming_broker.events()
    streaming_broker.subscribe_quotes(["AAPL"])
    await streaming_broker.connect()
    assert (await next_of(events, ConnectionEvent)).connected

    await data_fake.drop()
    down = await next_of(events, ConnectionEvent)
    assert down.connected is False and "data" in down.reason

    up = await next_of(events, ConnectionEvent)
    assert up.connected is True and streaming_broker.connected
    await data_fake.wait_subscribed("AAPL")  # subscriptions restored on the new connection
    await data_fake.send_quote("AAPL", 191.0, 191.1)
    assert (await next_of(events, QuoteEvent)).quote.bid == Decimal("191.0")


async def test_trading_stream_down_and_back(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    assert (await next_of(events, ConnectionEvent)).connected

    await trading_fake.stop()  # the service goes away entirely, then comes back
    down = await next_of(events, ConnectionEvent)
    assert down.connected is False and "trading" in down.reason
    assert not streaming_broker.connected  # nothing to reconnect to while it is stopped
    await trading_fake.start()
    assert (await next_of(events, ConnectionEvent)).connected is True
    await trading_fake.wait_clients(1)
    await trading_fake.send_update("new", order_json(OID, "sig-after"))
    assert (await next_of(events, OrderEvent)).order.client_order_id == "sig-after"


def test_reconnect_backoff_is_jittered_exponential_with_a_floor_after_406() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0, limit_backoff_s=15.0)
    for attempt in range(1, 12):
        base = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff.delay(attempt, None) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays), (attempt, delays)
        assert len(set(delays)) > 1  # jittered
        assert all(backoff.delay(attempt, 406) >= 15.0 for _ in range(20))
    assert backoff.delay(1, 401) <= 0.5  # only the connection limit has the floor


async def test_connection_limit_406_is_logged_backed_off_and_recovered(
    make_broker: Build,
    trading_fake: FakeTradingStream,
    data_fake: FakeDataStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="brokers")
    data_fake.occupy_slot()  # another process already streams with this key
    broker = make_broker(
        trading_stream_url=trading_fake.url,
        data_stream_url=data_fake.url,
        connection_limit_backoff_s=0.3,
        connect_timeout_s=0.5,
    )
    events = broker.events()
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.connect()  # not up in time (the reason may not be in yet)
        await data_fake.wait_until(lambda: data_fake.refused_406 >= 2)
        with pytest.raises(BrokerUnavailable, match="connection limit exceeded"):
            await broker.connect()
        assert not broker.connected
        assert "connection limit exceeded (406)" in caplog.text
        assert "another connection already uses this API key" in caplog.text
        # every wait after a refusal is at least the limit backoff
        waits = [
            float(r.args[2])  # type: ignore[index]
            for r in caplog.records
            if r.msg.startswith("alpaca %s stream down") and r.args[0] == "data"  # type: ignore[index]
        ]
        assert waits and all(wait >= 0.3 for wait in waits)

        data_fake.occupy_slot(False)  # the other process let go
        up = await next_of(events, ConnectionEvent)
        assert up.connected is True and broker.connected
    finally:
        await broker.close()


async def test_refused_trading_auth_fails_connect_with_the_reason(
    make_broker: Build, trading_fake: FakeTradingStream, data_fake: FakeDataStream
) -> None:
    trading_fake.reject_auth = True
    broker = make_broker(
        trading_stream_url=trading_fake.url, data_stream_url=data_fake.url, connect_timeout_s=0.5
    )
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.connect()
        # a second try at auth means the first refusal was taken in
        await trading_fake.wait_until(lambda: trading_fake.auth_attempts >= 2)
        with pytest.raises(BrokerUnavailable, match="authorization failed"):
            await broker.connect()
    finally:
        await broker.close()


async def test_data_stream_errors_other_than_406_keep_the_connection(
    streaming_broker: AlpacaBroker,
    data_fake: FakeDataStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = streaming_broker.events()
    streaming_broker.subscribe_quotes(["AAPL"])
    await streaming_broker.connect()
    await data_fake.wait_subscribed("AAPL")
    await data_fake.send_error(405, "symbol limit exceeded")
    await data_fake.send_quote("AAPL", 1.0, 1.1)
    assert (await next_of(events, QuoteEvent)).quote.symbol == "AAPL"
    assert "error 405: symbol limit exceeded" in caplog.text and streaming_broker.connected


async def test_close_stops_every_task_and_ends_events(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream, data_fake: FakeDataStream
) -> None:
    events = streaming_broker.events()
    await streaming_broker.connect()
    assert (await next_of(events, ConnectionEvent)).connected
    await streaming_broker.close()
    assert not streaming_broker.connected
    last = await next_of(events, ConnectionEvent)
    assert last.connected is False and last.reason == "closed"
    with pytest.raises(StopAsyncIteration):
        await anext(events)
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(name.startswith("alpaca-") for name in names)
    await trading_fake.wait_until(lambda: not trading_fake.clients)
    await data_fake.wait_until(lambda: not data_fake.clients)
    await streaming_broker.close()  # twice is harmless


async def test_keys_never_reach_the_logs_even_at_debug(
    streaming_broker: AlpacaBroker,
    data_fake: FakeDataStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    streaming_broker.subscribe_quotes(["AAPL"])
    await streaming_broker.connect()
    await data_fake.wait_subscribed("AAPL")
    await data_fake.drop()  # a reconnect authenticates again
    await data_fake.wait_clients(1)
    assert caplog.records  # debug logging was on
    assert SECRET not in caplog.text and KEY not in caplog.text


async def test_every_consumer_gets_every_event_the_first_also_the_backlog(
    streaming_broker: AlpacaBroker, trading_fake: FakeTradingStream
) -> None:
    await streaming_broker.connect()  # ConnectionEvent(True) published before anyone listens
    first = streaming_broker.events()
    assert (await next_of(first, ConnectionEvent)).connected is True
    second = streaming_broker.events()
    await trading_fake.send_update("new", order_json(OID, "sig-both"))
    assert (await next_of(first, OrderEvent)).order.client_order_id == "sig-both"
    assert (await next_of(second, OrderEvent)).order.client_order_id == "sig-both"
    await streaming_broker.close()
    late = streaming_broker.events()
    with pytest.raises(StopAsyncIteration):
        await anext(late)
