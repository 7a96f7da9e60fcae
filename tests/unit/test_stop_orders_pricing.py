"""Stop and stop_limit signals: valued at the worst price they can fill at once triggered,
collared from where they trigger, and hashed so that older bodies keep their hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from brokers.base import OrderType, Quote, Side
from gateway.config.settings import QuoteSettings
from gateway.models import Signal
from gateway.pipeline.ids import body_hash, exact_body
from gateway.risk.quotes import Price, QuoteBook

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def book() -> QuoteBook:
    quotes = QuoteBook(QuoteSettings(), clock=lambda: NOW)
    quotes.update(Quote(symbol="AAPL", bid=Decimal("199.95"), ask=Decimal("200.05"), ts=NOW))
    return quotes


def value(side: str, order_type: str, limit: str | None, stop: str | None) -> Decimal:
    priced = book().price_order(
        "AAPL",
        Side(side),
        OrderType(order_type),
        Decimal(limit) if limit else None,
        Decimal(stop) if stop else None,
    )
    assert isinstance(priced, Price)
    return priced.value


def test_a_buy_stop_is_valued_at_its_stop_or_the_ask_whichever_is_higher() -> None:
    assert value("buy", "stop", None, "210") == Decimal("210")
    assert value("buy", "stop", None, "190") == Decimal("200.05")  # through the market: now
    assert value("buy", "stop", None, "200.05") == Decimal("200.05")


def test_a_sell_stop_is_valued_at_its_stop_or_the_bid_whichever_is_lower() -> None:
    assert value("sell", "stop", None, "190") == Decimal("190")
    assert value("sell", "stop", None, "210") == Decimal("199.95")


def test_a_stop_limit_is_valued_at_its_limit() -> None:
    assert value("buy", "stop_limit", "211", "210") == Decimal("211")
    assert value("sell", "stop_limit", "189", "190") == Decimal("189")


def test_a_stop_needs_its_stop_price_and_a_market_order_refuses_one() -> None:
    base = {"signal_id": "s", "strategy": "m", "symbol": "AAPL", "side": "buy", "quantity": 1}
    with pytest.raises(ValidationError, match="stop_price: required"):
        Signal(**base, order_type="stop")
    with pytest.raises(ValidationError, match="limit_price: required"):
        Signal(**base, order_type="stop_limit", stop_price=210)
    with pytest.raises(ValidationError, match="stop_price: not allowed"):
        Signal(**base, stop_price=210)
    with pytest.raises(ValidationError, match="limit_price: not allowed"):
        Signal(**base, order_type="stop", stop_price=210, limit_price=211)
    ok = Signal(**base, order_type="stop", stop_price=210)
    assert exact_body(ok).endswith('"stop_price":210}')


def test_a_body_without_a_stop_hashes_as_it_did_before_stops_existed() -> None:
    signal = Signal(signal_id="s", strategy="m", symbol="AAPL", side="buy", quantity=1)
    # The hash and the exact body of a plain market signal, as journaled before stop_price.
    assert "stop_price" not in exact_body(signal)
    before = signal.model_dump_json(exclude={"stop_price", "stop_loss_price", "take_profit_price"})
    assert body_hash(signal) == hashlib.blake2b(before.encode(), digest_size=16).hexdigest()
