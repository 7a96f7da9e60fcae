"""A bracket's exits outlive the entry's day: the gateway sends them gtc, and at Alpaca (whose
legs take the entry's time in force) a market entry's bracket goes gtc."""

from __future__ import annotations

from decimal import Decimal

from brokers.alpaca.changes import bracket_request
from brokers.base import OrderRequest
from gateway.pipeline.brackets import leg_requests
from gateway.risk.protective import Protection


def entry(order_type: str = "market", tif: str = "day") -> OrderRequest:
    limit = {"limit_price": 199} if order_type == "limit" else {}
    return OrderRequest(
        client_order_id="gw-1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        order_type=order_type,
        time_in_force=tif,
        **limit,
    )


def test_the_exits_are_gtc_whatever_the_entrys_time_in_force() -> None:
    for tif in ("day", "gtc", "ioc"):
        legs = leg_requests(entry(tif=tif), Protection(Decimal(190), Decimal(220)))
        assert [(leg.time_in_force.value, role) for leg, role in legs] == [
            ("gtc", "stop_loss"),
            ("gtc", "take_profit"),
        ]


def test_alpaca_sends_a_market_entrys_bracket_gtc_and_a_limit_entrys_as_asked() -> None:
    for tif in ("day", "ioc"):
        market = entry(tif=tif)
        legs = leg_requests(market, Protection(Decimal(190), None))
        assert bracket_request(market, legs[0][0], None).time_in_force.value == "gtc"
    limit = entry("limit")
    legs = leg_requests(limit, Protection(Decimal(190), None))
    # A day limit entry stays a day order at Alpaca (its legs then end with the day, and the
    # position they leave is reported as protection lost).
    assert bracket_request(limit, legs[0][0], None).time_in_force.value == "day"


def test_alpaca_refuses_a_bracket_on_an_ioc_limit_entry_before_sending_it() -> None:
    import pytest

    from brokers.errors import OrderRejected

    limit = entry("limit", tif="ioc")
    legs = leg_requests(limit, Protection(Decimal(190), None))
    with pytest.raises(OrderRejected, match="time_in_force"):
        bracket_request(limit, legs[0][0], None)
