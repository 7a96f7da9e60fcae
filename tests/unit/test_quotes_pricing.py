"""Pricing from live quotes: market orders at the far side, limits at their limit, unusable
quotes refused with a reason, conservative pricing only when configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.base import OrderType, Quote, Side
from gateway.config import QuoteSettings
from gateway.models import ReasonCode
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook

D = Decimal
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def quotes(settings: QuoteSettings | None = None) -> QuoteBook:
    return QuoteBook(settings or QuoteSettings(), clock=lambda: NOW)


def q(bid: float, ask: float, age_s: float = 0, symbol: str = "AAPL") -> Quote:
    return Quote(symbol=symbol, bid=bid, ask=ask, ts=NOW - timedelta(seconds=age_s))


def test_market_orders_priced_conservatively() -> None:
    book = quotes()
    book.update(q(199.95, 200.05))
    buy = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    sell = book.price_order("AAPL", Side.SELL, OrderType.MARKET, None)
    limit = book.price_order("AAPL", Side.BUY, OrderType.LIMIT, D(190))
    assert isinstance(buy, Price) and buy.value == D("200.05")
    assert isinstance(sell, Price) and sell.value == D("199.95")
    assert isinstance(limit, Price) and limit.value == D(190)


@pytest.mark.parametrize(
    ("quote", "code"),
    [
        (q(199.95, 200.05, age_s=5.01), ReasonCode.QUOTE_STALE),
        (q(200.10, 200.00), ReasonCode.QUOTE_INVALID),
        (q(0, 200.00), ReasonCode.QUOTE_INVALID),
        (q(198.0, 202.1), ReasonCode.QUOTE_INVALID),  # 205 bps wide
    ],
)
def test_unusable_quotes_are_refused(quote: Quote, code: ReasonCode) -> None:
    book = quotes()
    book.update(quote)
    refusal = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert isinstance(refusal, PricingRefusal)
    assert refusal.code is code


def test_missing_quote_and_link_down() -> None:
    book = quotes()
    refusal = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert isinstance(refusal, PricingRefusal) and refusal.code is ReasonCode.QUOTE_MISSING
    book.update(q(199.95, 200.05))
    book.set_link(False)
    refusal = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert isinstance(refusal, PricingRefusal) and refusal.code is ReasonCode.QUOTE_STALE


def test_last_received_quote_wins_even_if_older() -> None:
    book = quotes()
    book.update(q(199.95, 200.05))
    book.update(q(199.95, 200.05, age_s=60))
    refusal = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert isinstance(refusal, PricingRefusal) and refusal.code is ReasonCode.QUOTE_STALE


def test_conservative_mode_prices_at_last_known_times_multiplier() -> None:
    book = quotes(QuoteSettings(missing="conservative", conservative_multiplier=D("1.10")))
    book.update(q(199.95, 200.05))
    book.update(q(199.95, 200.05, age_s=60))
    price = book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert isinstance(price, Price)
    assert price.conservative and price.value == D("220.000")
    missing = book.price_order("MSFT", Side.BUY, OrderType.MARKET, None)
    assert isinstance(missing, PricingRefusal)  # never a guess when nothing was ever seen
