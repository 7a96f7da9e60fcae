"""Quote usability at each boundary: age exactly max_age_s is fresh, a locked market (bid equal to
ask) is usable and a crossed one is not, a spread exactly at max_spread_bps passes, a quote with
no positive side is refused (never divided by), and only sane quotes become marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from brokers.base import OrderType, Quote, Side
from gateway.config import QuoteSettings
from gateway.models import ReasonCode
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook

D = Decimal
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def book(**settings: object) -> QuoteBook:
    return QuoteBook(QuoteSettings.model_validate(settings), clock=lambda: NOW)


def q(bid: str, ask: str, *, age: timedelta = timedelta(0), symbol: str = "AAPL") -> Quote:
    return Quote(symbol=symbol, bid=D(bid), ask=D(ask), ts=NOW - age)


def code(b: QuoteBook, symbol: str = "AAPL") -> ReasonCode | None:
    checked = b.check(symbol)
    return checked.code if isinstance(checked, PricingRefusal) else None


def message(b: QuoteBook, symbol: str = "AAPL") -> str:
    checked = b.check(symbol)
    assert isinstance(checked, PricingRefusal)
    return checked.message


def test_a_quote_exactly_max_age_old_is_fresh_and_a_microsecond_more_is_stale() -> None:
    b = book()  # max_age_s 5
    b.update(q("99.99", "100.01", age=timedelta(seconds=5)))
    assert code(b) is None
    b.update(q("99.99", "100.01", age=timedelta(seconds=5, microseconds=1)))
    assert code(b) is ReasonCode.QUOTE_STALE


def test_a_locked_market_is_usable_and_a_crossed_one_is_invalid() -> None:
    b = book()
    b.update(q("100", "100"))
    assert code(b) is None
    assert b.marks() == {"AAPL": D(100)}
    b.update(q("100.01", "100"))
    assert code(b) is ReasonCode.QUOTE_INVALID
    assert b.marks() == {"AAPL": D(100)}  # the crossed quote is no mark


def test_a_spread_exactly_at_the_limit_passes_and_beyond_it_is_invalid() -> None:
    b = book()  # max_spread_bps 100: 1.00 wide around a mid of 100
    b.update(q("99.5", "100.5"))
    assert code(b) is None
    b.update(q("99.5", "100.51"))
    assert code(b) is ReasonCode.QUOTE_INVALID
    assert "101 bps" in message(b) and "100 bps" in message(b)  # 1.01 wide on a mid of 100.005


def test_a_quote_with_no_positive_side_is_invalid_and_never_a_mark() -> None:
    b = book()
    b.update(q("0", "0"))
    assert code(b) is ReasonCode.QUOTE_INVALID
    b.update(q("100", "0"))
    assert code(b) is ReasonCode.QUOTE_INVALID
    assert "not positive" in message(b)  # a zero ask, not a crossed market
    b.update(q("0", "100"))
    assert code(b) is ReasonCode.QUOTE_INVALID
    assert "AAPL" in message(b) and "not positive" in message(b)  # not a 20000 bps spread
    assert b.marks() == {}


def test_the_smallest_positive_quote_is_usable_and_a_mark() -> None:
    b = book()
    b.update(q("0.01", "0.01"))
    assert code(b) is None
    assert b.marks() == {"AAPL": D("0.01")}


def test_the_adapters_link_probe_is_read_at_pricing_time() -> None:
    up = [True]
    b = QuoteBook(QuoteSettings(), clock=lambda: NOW, link_up=lambda: up[0])
    b.update(q("99.99", "100.01"))
    assert code(b) is None
    up[0] = False
    assert code(b) is ReasonCode.QUOTE_STALE
    assert "AAPL" in message(b) and "link down" in message(b)
    up[0] = True
    b.set_link(False)
    assert code(b) is ReasonCode.QUOTE_STALE
    b.set_link(True)
    assert code(b) is None


def test_quote_ages_and_symbols_for_the_metrics() -> None:
    b = book()
    assert b.age_s("AAPL") is None
    b.update(q("99.99", "100.01", age=timedelta(seconds=2.5)))
    b.update(q("9.99", "10.01", symbol="ABC"))
    assert b.age_s("AAPL") == 2.5
    assert b.age_s("ABC") == 0.0
    assert b.symbols() == ["AAPL", "ABC"]
    assert b.get("AAPL") == q("99.99", "100.01", age=timedelta(seconds=2.5))
    assert b.get("MSFT") is None


def test_a_limit_order_is_valued_at_its_limit_and_keeps_the_quote() -> None:
    b = book()
    b.update(q("99.99", "100.01"))
    priced = b.price_order("AAPL", Side.SELL, OrderType.LIMIT, D(101))
    assert priced == Price(D(101), q("99.99", "100.01"))
    market = b.price_order("AAPL", Side.SELL, OrderType.MARKET, None)
    assert market == Price(D("99.99"), q("99.99", "100.01"))


def test_conservative_pricing_needs_a_good_quote_seen_once() -> None:
    b = book(missing="conservative")
    b.update(q("0", "100"))  # never sane: no last good mid
    assert isinstance(b.price_order("AAPL", Side.BUY, OrderType.MARKET, None), PricingRefusal)
    b.update(q("99", "101"))
    b.set_link(False)
    priced = b.price_order("AAPL", Side.BUY, OrderType.MARKET, None)
    assert priced == Price(D("110.000"), None, conservative=True)
