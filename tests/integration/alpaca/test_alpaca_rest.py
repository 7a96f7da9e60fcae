"""The adapter's REST surface on hand-written cassettes shaped like Alpaca's real answers:
what each method parses, and that the happy path is exactly one request."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca_helpers import KEY, SECRET, make_vcr, played

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import Broker, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from brokers.errors import BrokerError, OrderNotFound, OrderRejected
from brokers.retrying import RetryingBroker

Build = Callable[..., AlpacaBroker]


def test_is_a_broker(make_broker: Build) -> None:
    assert isinstance(make_broker(), Broker)


async def test_account_is_one_get(make_broker: Build) -> None:
    with make_vcr().use_cassette("account.yaml") as cassette:
        account = await make_broker().account()
    assert played(cassette) == 1 and played(cassette, "GET", "/v2/account") == 1
    assert account.equity == Decimal("100501.88")
    assert account.cash == Decimal("98103.07")
    assert account.buying_power == Decimal("196206.14")
    assert account.day_start_equity == Decimal("100625.78176104194422554")


async def test_positions_are_signed(make_broker: Build) -> None:
    with make_vcr().use_cassette("positions.yaml") as cassette:
        positions = {p.symbol: p for p in await make_broker().positions()}
    assert played(cassette) == 1
    assert positions["AAPL"].qty == 19 and positions["AAPL"].avg_price == Decimal("175.25")
    assert positions["AAPL"].market_price == Decimal("190.8678")
    assert positions["TSLA"].qty == -5  # short: side "short", qty "-5"
    assert positions["TSLA"].avg_price == Decimal("250.1")


async def test_open_orders_is_one_get_with_status_open(make_broker: Build) -> None:
    with make_vcr().use_cassette("open_orders.yaml") as cassette:
        orders = await make_broker().open_orders()
    assert played(cassette) == 1
    assert "status=open" in cassette.requests[0].uri
    by_id = {o.client_order_id: o for o in orders}
    partial = by_id["sig-open-1"]
    assert partial.status is OrderStatus.PARTIALLY_FILLED and partial.order_type is OrderType.LIMIT
    assert (partial.quantity, partial.filled_quantity) == (Decimal(10), Decimal(4))
    assert partial.limit_price == Decimal("189.5") and partial.avg_fill_price == Decimal("189.49")
    gtc = by_id["sig-open-2"]
    assert gtc.side is Side.SELL and gtc.time_in_force is TimeInForce.GTC
    assert gtc.status is OrderStatus.NEW
    assert by_id["sig-open-3"].status is OrderStatus.NEW  # pending_new -> new
    assert all(o.is_open for o in orders)


async def test_get_order_by_client_id_and_none_on_404(make_broker: Build) -> None:
    broker = make_broker()
    with make_vcr().use_cassette("get_order.yaml") as cassette:
        filled = await broker.get_order("sig-1")
        missing = await broker.get_order("sig-unknown")
    assert played(cassette) == 2
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert filled.avg_fill_price == Decimal("190.86") and filled.filled_quantity == 1
    assert missing is None


async def test_submit_market_is_one_post(make_broker: Build) -> None:
    order = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=1)
    with make_vcr().use_cassette("submit_market.yaml") as cassette:
        placed = await make_broker().submit(order)
    assert played(cassette) == 1 and played(cassette, "POST") == 1
    assert placed.client_order_id == "sig-1"
    assert placed.broker_order_id == "0d7c4e1a-2f3b-4c5d-9e8f-7a6b5c4d3e2f"
    assert placed.status is OrderStatus.NEW


async def test_submit_limit_sends_price_tif_and_client_id(make_broker: Build) -> None:
    order = OrderRequest(
        client_order_id="sig-2",
        symbol="MSFT",
        side="sell",
        quantity="2.5",
        order_type="limit",
        limit_price="401.25",
        time_in_force="gtc",
    )
    with make_vcr().use_cassette("submit_limit.yaml") as cassette:
        placed = await make_broker().submit(order)
    assert played(cassette, "POST") == 1
    sent = cassette.requests[0].body
    for fragment in (
        b'"client_order_id": "sig-2"',
        b'"limit_price": 401.25',
        b'"qty": 2.5',
        b'"time_in_force": "gtc"',
        b'"type": "limit"',
    ):
        assert fragment in (sent if isinstance(sent, bytes) else sent.encode())
    assert placed.order_type is OrderType.LIMIT and placed.limit_price == Decimal("401.25")
    assert placed.quantity == Decimal("2.5") and placed.status is OrderStatus.NEW


async def test_cancel_looks_up_then_deletes(make_broker: Build) -> None:
    broker = make_broker()
    with make_vcr().use_cassette("cancel.yaml") as cassette:
        await broker.cancel("sig-open-1")
        assert played(cassette, "DELETE", "/v2/orders/61e69015") == 1
        with pytest.raises(OrderNotFound):
            await broker.cancel("sig-gone")
        with pytest.raises(OrderRejected, match="filled"):
            await broker.cancel("sig-1")  # already filled: nothing sent
    assert played(cassette, "DELETE") == 1 and cassette.all_played


async def test_cancel_all_is_one_delete_with_per_order_report(make_broker: Build) -> None:
    with make_vcr().use_cassette("cancel_all.yaml") as cassette:
        report = await make_broker().cancel_all()
    assert played(cassette) == 1 and played(cassette, "DELETE") == 1
    assert report.cancelled == [
        "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "7a2b1f3c-0f24-4a39-9c41-5f7d9d5b6a11",
    ]
    assert report.failed == {"9c1e8f2a-6b3d-4e5f-8a7b-1c2d3e4f5a6b": "order is not cancelable"}


async def test_cancel_all_with_nothing_open(make_broker: Build) -> None:
    with make_vcr().use_cassette("cancel_all_empty.yaml"):
        report = await make_broker().cancel_all()
    assert report.cancelled == [] and report.failed == {}


async def test_latest_quote(make_broker: Build) -> None:
    with make_vcr().use_cassette("quote.yaml") as cassette:
        quote = await make_broker().quote("AAPL")
    assert played(cassette) == 1
    assert "feed=iex" in cassette.requests[0].uri
    assert (quote.symbol, quote.bid, quote.ask) == ("AAPL", Decimal("190.85"), Decimal("190.88"))
    assert quote.ts == datetime(2023, 11, 6, 15, 29, 59, 871694, tzinfo=UTC)


async def test_behind_the_retry_layer_the_happy_path_is_still_one_request_each(
    make_broker: Build,
) -> None:
    broker = RetryingBroker(make_broker())
    order = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=1)
    for cassette_name, call, method in [
        ("account.yaml", broker.account, "GET"),
        ("open_orders.yaml", broker.open_orders, "GET"),
        ("submit_market.yaml", lambda: broker.submit(order), "POST"),
        ("cancel_all.yaml", broker.cancel_all, "DELETE"),
    ]:
        with make_vcr().use_cassette(cassette_name) as cassette:
            await call()
        assert played(cassette) == 1 and played(cassette, method) == 1, cassette_name


def test_endpoints_follow_paper_flag() -> None:
    paper = AlpacaBroker(KEY, SECRET)
    live = AlpacaBroker(KEY, SECRET, paper=False, feed="sip")
    assert paper._trading._base_url == "https://paper-api.alpaca.markets"
    assert live._trading._base_url == "https://api.alpaca.markets"
    assert paper._trade_stream.url == "wss://paper-api.alpaca.markets/stream"
    assert live._trade_stream.url == "wss://api.alpaca.markets/stream"
    assert live._data_stream.url == "wss://stream.data.alpaca.markets/v2/sip"


def test_bad_feed_and_missing_keys_are_refused() -> None:
    with pytest.raises(BrokerError, match="feed"):
        AlpacaBroker(KEY, SECRET, feed="nasdaq")
    with pytest.raises(BrokerError, match="secret_key"):
        AlpacaBroker(KEY, "")


def test_from_env_reads_keys_and_never_shows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    with pytest.raises(BrokerError) as caught:
        AlpacaBroker.from_env(paper=True, feed="iex")
    # every missing variable at once, so one fix is enough
    assert caught.value.code == "missing_credentials"
    assert caught.value.message.startswith("ALPACA_API_KEY and ALPACA_SECRET_KEY are not set")
    monkeypatch.setenv("ALPACA_API_KEY", "PKENVKEY123")
    with pytest.raises(BrokerError, match=r"^ALPACA_SECRET_KEY is not set") as caught:
        AlpacaBroker.from_env(paper=True, feed="iex")
    assert caught.value.code == "missing_credentials"
    monkeypatch.setenv("ALPACA_SECRET_KEY", "envsecret456")
    broker = AlpacaBroker.from_env(paper=False, feed="sip", timeout_s=3.0)
    assert broker.paper is False and broker.feed == "sip"
    assert os.environ["ALPACA_API_KEY"] not in repr(broker)
    assert "envsecret456" not in repr(broker) + repr(broker._trade_stream)
    given = AlpacaBroker.from_env(environ={"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s"})
    assert given.paper is True
    with pytest.raises(BrokerError, match=r"^ALPACA_SECRET_KEY is not set"):
        AlpacaBroker.from_env(environ={"ALPACA_API_KEY": "k"})
    with pytest.raises(BrokerError, match=r"^ALPACA_API_KEY is not set"):
        AlpacaBroker.from_env(environ={"ALPACA_API_KEY": " ", "ALPACA_SECRET_KEY": "s"})
