"""Protective exits: planned from the signal and risk_management.protective_stop, refused on
the wrong side of the market, and counted at their real distance by the book."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from brokers.base import BrokerOrder, Quote, Side
from gateway.config.risk import RiskConfig
from gateway.models import Reason, ReasonCode, Signal
from gateway.risk.book import Book, Holding, Reservation
from gateway.risk.protective import Protection, auto_stop, plan_protection

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
QUOTE = Quote(symbol="AAPL", bid=D("199.95"), ask=D("200.05"), ts=NOW)


def risk(policy: str = "none") -> RiskConfig:
    return RiskConfig.model_validate({"risk_management": {"protective_stop": policy}})


def sig(side: str = "buy", **fields: Any) -> Signal:
    return Signal(signal_id="s", strategy="m", symbol="AAPL", side=side, quantity=10, **fields)


def plan(signal: Signal, policy: str = "none", *, grows: bool = True) -> Protection | Reason:
    price = QUOTE.ask if signal.side is Side.BUY else QUOTE.bid
    return plan_protection(signal, price, QUOTE, grows=grows, risk=risk(policy))


def test_exits_on_the_right_side_pass_and_on_the_wrong_side_are_refused() -> None:
    assert plan(sig(stop_loss_price=190, take_profit_price=220)) == Protection(D(190), D(220))
    assert plan(sig("sell", stop_loss_price=210, take_profit_price=180)) == Protection(
        D(210), D(180)
    )
    for wrong in (
        sig(stop_loss_price="200.05"),  # at the ask: not below it
        sig(take_profit_price="200.05"),
        sig("sell", stop_loss_price="199.95"),
        sig("sell", take_profit_price="199.95"),
    ):
        refused = plan(wrong)
        assert isinstance(refused, Reason), wrong
        assert refused.code is ReasonCode.PROTECTIVE_PRICE_INVALID
    # One cent inside is fine.
    assert isinstance(plan(sig(stop_loss_price="200.04")), Protection)
    assert isinstance(plan(sig("sell", stop_loss_price="199.96")), Protection)


def test_the_policy_adds_or_requires_a_stop_only_for_what_opens_or_grows() -> None:
    assert plan(sig()) == Protection()
    auto = plan(sig(), "auto")
    assert auto == Protection(D("194.04"), None, auto=True)  # 200.05 x 0.97, floored to cents
    assert plan(sig("sell"), "auto") == Protection(D("205.95"), None, auto=True)
    required = plan(sig(), "required")
    assert isinstance(required, Reason) and required.code is ReasonCode.STOP_LOSS_REQUIRED
    assert plan(sig(), "required", grows=False) == Protection()
    assert plan(sig(), "auto", grows=False) == Protection()
    assert plan(sig(stop_loss_price=199), "required") == Protection(D(199))


def test_auto_stops_round_away_from_the_price() -> None:
    assert auto_stop(Side.BUY, D("100.01"), D("0.03")) == D("97.00")  # 97.0097
    assert auto_stop(Side.SELL, D("100.01"), D("0.03")) == D("103.02")  # 103.0103
    assert auto_stop(Side.BUY, D("1"), D("0.03")) == D("0.97")
    assert auto_stop(Side.BUY, D("0.5"), D("0.03")) == D("0.4850")  # sub-penny below $1
    assert auto_stop(Side.BUY, D("0.0001"), D("0.03")) == 0


def test_a_price_too_small_for_any_stop_is_refused_under_auto() -> None:
    tiny = Signal(signal_id="s", strategy="m", symbol="AAPL", side="buy", quantity=1)
    refused = plan_protection(tiny, D("0.0001"), None, grows=True, risk=risk("auto"))
    assert isinstance(refused, Reason) and refused.code is ReasonCode.PROTECTIVE_PRICE_INVALID


def test_the_shipped_key_defaults_to_none_and_refuses_anything_else() -> None:
    assert RiskConfig().risk_management.protective_stop == "none"
    with pytest.raises(ValueError):
        risk("sometimes")


def leg(coid: str, qty: str, stop: str, status: str = "accepted") -> BrokerOrder:
    return BrokerOrder(
        client_order_id=coid,
        broker_order_id="b-" + coid,
        symbol="AAPL",
        side="sell",
        quantity=qty,
        status=status,
        order_type="stop",
        stop_price=stop,
    )


def test_a_position_counts_its_live_stop_legs_at_their_distance_and_the_rest_at_the_percent() -> (
    None
):
    book = Book()
    book.holdings["AAPL"] = Holding(D(10), D(200))
    marks = {"AAPL": D(200)}
    assert book.at_risk(marks, D("0.03")) == D(60)  # 10 x 200 x 3%
    book.add_legs({"e-sl": "stop_loss"})
    book.apply_order(leg("e-sl", "6", "190"))
    # 6 protected at 10 away (60), 4 at 3% of 200 (24).
    assert book.at_risk(marks, D("0.03")) == D(84)
    assert book.gross_exposure(marks) == D(2000)  # a leg adds no exposure
    assert book.pending_sell_qty("AAPL") == 0  # and is not a sell for the short rule
    book.apply_order(leg("e-sl", "6", "190", status="canceled"))
    assert book.at_risk(marks, D("0.03")) == D(60)


def test_an_entry_with_a_stop_counts_its_distance_while_it_rests() -> None:
    book = Book()
    book.reserve(Reservation("e", "AAPL", Side.BUY, D(10), D(200), D(195)))
    assert book.at_risk({}, D("0.03")) == D(50)
    book.release("e")
    assert book.at_risk({}, D("0.03")) == 0
    book.reserve(Reservation("p", "AAPL", Side.BUY, D(10), D(200)))
    assert book.at_risk({}, D("0.03")) == D(60)


def test_the_shipped_file_protects_new_positions_and_the_seed_file_does_not() -> None:
    from pathlib import Path

    from gateway.config import load_risk_config

    root = Path(__file__).resolve().parents[2]
    shipped = load_risk_config(root / "config" / "risk_management.yaml")
    assert shipped.risk_management.protective_stop == "auto"
    seed = load_risk_config(root / "tests" / "fixtures" / "seed_risk_management.yaml")
    assert seed.risk_management.protective_stop == "none"
