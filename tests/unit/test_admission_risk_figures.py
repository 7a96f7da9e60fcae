"""The risk figures admission puts on a decision, and the gates that read them, at the edges the
main risk math tests do not reach: equity at or below zero (every order is full risk, never a
division by zero), equity of exactly one, fractional positions, and limits priced without a quote
(conservative pricing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderType, Quote, Side
from gateway.config import QuoteSettings, load_risk_config
from gateway.models import DecisionKind, ReasonCode, Signal
from gateway.pipeline.admission import Admission, admit
from gateway.risk.book import Book
from gateway.risk.quotes import Price, QuoteBook

D = Decimal
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
_SHIPPED = load_risk_config(Path(__file__).resolve().parents[2] / "config" / "risk_management.yaml")
# An order's own risk at stop_loss_percent: no protective stop (the shipped file adds them).
RISK = _SHIPPED.model_copy(
    update={
        "risk_management": _SHIPPED.risk_management.model_copy(update={"protective_stop": "none"})
    }
)


def signal(qty: str, *, side: str = "buy", limit: str | None = None) -> Signal:
    fields: dict[str, Any] = {
        "signal_id": "t",
        "strategy": "s",
        "symbol": "AAPL",
        "side": side,
        "quantity": qty,
    }
    if limit is not None:
        fields.update(order_type="limit", limit_price=limit)
    return Signal(**fields)


def book(cash: str, position: str | None = None, price: str = "200") -> Book:
    b = Book()
    b.cash = D(cash)
    if position is not None:
        b.apply_order(
            BrokerOrder(
                client_order_id="seed",
                broker_order_id="b-seed",
                symbol="AAPL",
                side="buy",
                quantity=position,
                filled_quantity=position,
                avg_fill_price=price,
                status="filled",
            )
        )
        b.cash = D(cash)  # the fill moved cash; the test sets equity itself
    return b


def run(
    sig: Signal,
    price: Price,
    b: Book,
    *,
    reduce_only: str | None = None,
    buying_power: str = "1000000000",
) -> Admission:
    return admit(
        sig,
        price,
        book=b,
        quotes=QuoteBook(QuoteSettings(), clock=lambda: NOW),
        buying_power=D(buying_power),
        risk=RISK,
        reduce_only=reduce_only,
    )


def codes(admission: Admission) -> list[ReasonCode]:
    return [r.code for r in admission.refusal[1]] if admission.refusal else []


@pytest.mark.parametrize("cash", ["0", "-1000"])
def test_an_account_without_positive_equity_counts_every_order_as_full_risk(cash: str) -> None:
    admission = run(signal("0.01"), Price(D("0.01"), None), book(cash))
    assert admission.risk.equity == D(cash)
    assert admission.risk.position_risk == D(1)
    assert admission.risk.heat_before == D(1)
    assert admission.risk.heat_after == D(2)
    assert admission.refusal is not None and admission.refusal[0] is DecisionKind.REJECTED
    assert codes(admission) == [ReasonCode.POSITION_RISK, ReasonCode.PORTFOLIO_HEAT]


def test_an_equity_of_exactly_one_is_divided_by_not_treated_as_none() -> None:
    b = book("0", position="0.005", price="200")  # 1.00 of equity, all in the position
    admission = run(signal("0.01"), Price(D("0.01"), None), b)
    assert admission.risk.equity == D(1)
    assert admission.risk.position_risk == D("0.000003")  # 0.0001 x 3% / 1
    assert admission.risk.heat_before == D("0.03")  # 1.00 held x 3% / 1
    assert admission.risk.heat_after == D("0.030003")
    assert admission.refusal is None


def test_selling_a_fractional_long_position_is_reducing_under_reduce_only() -> None:
    b = book("1000", position="0.5")
    sale = run(signal("0.5", side="sell"), Price(D(200), None), b, reduce_only="daily_loss")
    assert sale.refusal is None
    buy = run(signal("0.5"), Price(D(200), None), b, reduce_only="daily_loss")
    assert buy.refusal is not None and codes(buy) == [ReasonCode.REDUCE_ONLY]


def test_a_reducing_order_leaves_heat_after_equal_to_heat_before() -> None:
    b = book("100000", position="10")  # 102,000 equity, 2,000 held
    held_heat = D(2000) * D("0.03") / D(102000)
    sale = run(signal("5", side="sell"), Price(D(200), None), b)
    assert sale.risk.heat_before == sale.risk.heat_after == held_heat
    buy = run(signal("5"), Price(D(200), None), b)
    assert buy.risk.heat_after == held_heat + D(1000) * D("0.03") / D(102000)


def test_a_limit_priced_conservatively_without_a_quote_is_not_collared() -> None:
    # With quotes.missing: conservative, a symbol whose quote went stale is priced from its last
    # good mid and carries no quote: there is nothing to measure a collar against.
    settings = QuoteSettings(missing="conservative")
    quotes = QuoteBook(settings, clock=lambda: NOW)
    quotes.update(Quote(symbol="AAPL", bid=199.95, ask=200.05, ts=NOW))
    quotes.set_link(False)
    priced = quotes.price_order("AAPL", Side.BUY, OrderType.LIMIT, D(300))
    assert isinstance(priced, Price) and priced.quote is None and priced.conservative
    admission = run(signal("1", limit="300"), priced, book("100000"))
    assert admission.refusal is None
