"""Pricing and pre-trade risk math, exact. Includes the replaced system's five heat scenarios."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.base import BrokerOrder, OrderType, Quote, Side
from gateway.config import QuoteSettings, RiskConfig
from gateway.models import ReasonCode, Signal
from gateway.risk.book import Book, Reservation
from gateway.risk.checks import OrderContext, portfolio_heat, run_checks
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook

D = Decimal
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
RISK = RiskConfig()
STOP = RISK.risk_management.stop_loss_percent


def book_with(*positions: tuple[str, int, float]) -> Book:
    book = Book()
    for symbol, qty, price in positions:
        book.apply_order(
            BrokerOrder(
                client_order_id=f"seed-{symbol}-{qty}",
                broker_order_id="x",
                symbol=symbol,
                side="buy",
                quantity=qty,
                filled_quantity=qty,
                avg_fill_price=price,
                status="filled",
            )
        )
    return book


# --- the replaced system's heat scenarios (test_portfolio_heat_calculation.py) ----------------


def test_heat_scenario_1_single_position() -> None:
    book = book_with(("AAPL", 100, 200))
    assert portfolio_heat(book.gross_exposure({}), STOP, D(100000)) == D("0.006")  # 0.60%


def test_heat_scenario_2_multiple_positions() -> None:
    book = book_with(("AAPL", 100, 200), ("AAPL", 50, 200))
    assert portfolio_heat(book.gross_exposure({}), STOP, D(100000)) == D("0.009")  # 0.90%


def test_heat_scenario_3_at_limit() -> None:
    # 833,333.33 of exposure at 3% on 100k is 25%: exactly the limit, which passes.
    book = book_with(("SPY", 1000, 833.3333333333333))
    heat = portfolio_heat(book.gross_exposure({}), STOP, D(100000))
    assert heat.quantize(D("0.0001")) == D("0.2500")


def test_heat_scenario_4_overexposure_detected() -> None:
    book = book_with(("SPY", 1000, 1000))
    heat = portfolio_heat(book.gross_exposure({}), STOP, D(100000))
    assert heat == D("0.30")
    assert heat > RISK.risk_management.max_portfolio_heat


def test_heat_scenario_5_realistic_portfolio() -> None:
    book = book_with(("AAPL", 50, 190), ("MSFT", 30, 410), ("SPY", 25, 400), ("TLT", 40, 96.67))
    heat = portfolio_heat(book.gross_exposure({}), STOP, D(100000))
    assert heat.quantize(D("0.0001")) == D("0.0107")  # ~1.07%


def test_heat_counts_open_orders_and_reservations() -> None:
    book = book_with(("AAPL", 100, 200))
    book.apply_order(
        BrokerOrder(
            client_order_id="rest",
            broker_order_id="r",
            symbol="AAPL",
            side="buy",
            quantity=50,
            status="accepted",
            limit_price=200,
            order_type="limit",
        )
    )
    assert portfolio_heat(book.gross_exposure({}), STOP, D(100000)) == D("0.009")
    book.reserve(Reservation("inflight", "MSFT", Side.BUY, D(10), D(400)))
    assert portfolio_heat(book.gross_exposure({}), STOP, D(100000)) == D("0.0102")
    book.release("inflight")
    assert portfolio_heat(book.gross_exposure({}), STOP, D(100000)) == D("0.009")


def test_the_same_fill_seen_twice_moves_the_position_once() -> None:
    book = Book()
    order = BrokerOrder(
        client_order_id="c",
        broker_order_id="b",
        symbol="AAPL",
        side="buy",
        quantity=10,
        filled_quantity=10,
        avg_fill_price=200,
        status="filled",
    )
    assert book.apply_order(order) == 10
    assert book.apply_order(order) == 0
    assert book.position_qty("AAPL") == 10
    assert book.cash == D(-2000)


def test_partial_fills_use_the_exact_price_of_each_part() -> None:
    book = Book()
    base = dict(client_order_id="c", broker_order_id="b", symbol="AAPL", side="buy", quantity=10)
    book.apply_order(
        BrokerOrder(**base, filled_quantity=4, avg_fill_price=100, status="partially_filled")
    )
    book.apply_order(BrokerOrder(**base, filled_quantity=10, avg_fill_price=106, status="filled"))
    assert book.position_qty("AAPL") == 10
    assert book.cash == D(-1060)
    assert book.holdings["AAPL"].avg_price == D(106)


# --- pricing -------------------------------------------------------------------------------


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


# --- checks --------------------------------------------------------------------------------


def ctx(
    qty: float,
    price: float,
    *,
    side: str = "buy",
    gross: float = 0,
    position: float = 0,
    equity: float = 100000,
    bp: float = 10**9,
    limit: float | None = None,
    quote: Quote | None = None,
) -> OrderContext:
    fields: dict = {
        "signal_id": "t",
        "strategy": "s",
        "symbol": "AAPL",
        "side": side,
        "quantity": qty,
    }
    if limit is not None:
        fields.update(order_type="limit", limit_price=limit)
    return OrderContext(
        signal=Signal(**fields),
        price=D(repr(price)),
        quote=quote,
        equity=D(equity),
        position_qty=D(position),
        gross_exposure=D(gross),
        buying_power=D(bp),
        risk=RISK,
    )


def test_heat_boundary_is_exact() -> None:
    # 25% heat at 3% stop on 100k equity = 833,333.33...; use round numbers at a 30k equity.
    exact = ctx(100, 100, gross=240000, equity=30000)  # (240000 + 10000) * 0.03 / 30000 = 0.25
    assert exact.heat_after == D("0.25")
    assert ReasonCode.PORTFOLIO_HEAT not in {r.code for r in run_checks(exact)}
    over = ctx(100, 100.01, gross=240000, equity=30000)
    assert ReasonCode.PORTFOLIO_HEAT in {r.code for r in run_checks(over)}


def test_reducing_order_skips_exposure_checks() -> None:
    reduce = ctx(100, 200, side="sell", position=100, gross=10**7)
    assert reduce.reduces_only
    assert run_checks(reduce) == []
    flip = ctx(200, 200, side="sell", position=100)
    assert not flip.reduces_only


def test_price_collar_both_sides() -> None:
    quote = q(199.95, 200.05)
    assert run_checks(ctx(1, 210, limit=210, quote=quote)) == []  # 200.05 * 1.05 = 210.0525
    assert [r.code for r in run_checks(ctx(1, 210.06, limit=210.06, quote=quote))] == [
        ReasonCode.PRICE_COLLAR
    ]
    assert [
        r.code for r in run_checks(ctx(1, 189, side="sell", limit=189, quote=quote, position=0))
    ] == [ReasonCode.PRICE_COLLAR]
    assert run_checks(ctx(1, 250, side="sell", limit=250, quote=quote)) == []  # passive


def test_buying_power() -> None:
    assert [r.code for r in run_checks(ctx(10, 200, bp=1999))] == [ReasonCode.BUYING_POWER]
    assert run_checks(ctx(10, 200, bp=2000)) == []


@given(
    qty=st.integers(min_value=1, max_value=10000),
    price=st.decimals(min_value=D("0.01"), max_value=D(5000), places=2),
)
def test_position_risk_formula(qty: int, price: Decimal) -> None:
    c = ctx(qty, float(price), equity=100000)
    assert c.position_risk == D(qty) * D(repr(float(price))) * STOP / D(100000)
    refused = ReasonCode.POSITION_RISK in {r.code for r in run_checks(c)}
    assert refused == (c.position_risk > RISK.risk_management.max_single_position_risk)


def test_position_after_fill_opens_adds_reduces_and_flips() -> None:
    from brokers.base import position_after_fill

    assert position_after_fill(D(0), D(0), Side.BUY, D(10), D(100)) == (D(10), D(100))
    assert position_after_fill(D(10), D(100), Side.BUY, D(10), D(110)) == (D(20), D(105))
    assert position_after_fill(D(20), D(105), Side.SELL, D(5), D(120)) == (D(15), D(105))
    assert position_after_fill(D(15), D(105), Side.SELL, D(20), D(90)) == (D(-5), D(90))
    qty, _ = position_after_fill(D(-5), D(90), Side.BUY, D(5), D(80))
    assert qty == 0
