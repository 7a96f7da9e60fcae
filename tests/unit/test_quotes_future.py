"""A quote stamped ahead of the gateway's clock by more than quotes.max_future_s is not fresh:
it is quote_invalid, whatever its bid and ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.base import OrderType, Quote, Side
from gateway.config import QuoteSettings
from gateway.models import ReasonCode
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def book_with(ahead: timedelta, settings: QuoteSettings | None = None) -> QuoteBook:
    book = QuoteBook(settings or QuoteSettings(), clock=lambda: NOW)
    book.update(Quote(symbol="AAPL", bid=199.95, ask=200.05, ts=NOW + ahead))
    return book


def priced(book: QuoteBook) -> Price | PricingRefusal:
    return book.price_order("AAPL", Side.BUY, OrderType.MARKET, None)


def test_the_default_slack_is_two_seconds() -> None:
    assert QuoteSettings().max_future_s == 2.0


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(seconds=1), timedelta(seconds=2)])
def test_up_to_max_future_s_ahead_is_fresh(ahead: timedelta) -> None:
    price = priced(book_with(ahead))
    assert isinstance(price, Price) and price.value == Decimal("200.05")


@pytest.mark.parametrize(
    "ahead", [timedelta(seconds=2) + MICRO, timedelta(seconds=3), timedelta(days=365)]
)
def test_beyond_max_future_s_is_quote_invalid(ahead: timedelta) -> None:
    refusal = priced(book_with(ahead))
    assert isinstance(refusal, PricingRefusal)
    assert refusal.code is ReasonCode.QUOTE_INVALID
    assert "ahead of the gateway's clock" in refusal.message
    assert "max 2s" in refusal.message


def test_the_slack_follows_the_setting() -> None:
    strict = QuoteSettings(max_future_s=0)
    assert isinstance(priced(book_with(timedelta(0), strict)), Price)
    refusal = priced(book_with(MICRO, strict))
    assert isinstance(refusal, PricingRefusal) and refusal.code is ReasonCode.QUOTE_INVALID
    lenient = QuoteSettings(max_future_s=30)
    assert isinstance(priced(book_with(timedelta(seconds=30), lenient)), Price)


def test_under_conservative_pricing_a_future_quote_is_unusable_like_any_other() -> None:
    # quotes.missing: conservative prices an unusable quote at the last mid x the multiplier
    # and says so; a quote from the future is never used as a fresh one.
    book = book_with(timedelta(days=365), QuoteSettings(missing="conservative"))
    price = priced(book)
    assert isinstance(price, Price)
    assert price.conservative and price.quote is None
    assert price.value == 200 * QuoteSettings().conservative_multiplier
