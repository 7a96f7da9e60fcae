"""What a replace may change (``change_for``) and when it adds exposure (``adds_exposure``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderChange
from gateway.errors import ReplaceInvalid
from gateway.models import OrderReplace
from gateway.pipeline.replace_rules import adds_exposure, change_for, replaced


def order(**fields: Any) -> BrokerOrder:
    base: dict[str, Any] = {
        "client_order_id": "gw-1",
        "broker_order_id": "b-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 10,
        "status": "accepted",
        "order_type": "limit",
        "limit_price": 100,
    }
    base.update(fields)
    return BrokerOrder(**base)


def patch(**fields: Any) -> OrderReplace:
    return OrderReplace(signal_id="r-1", **fields)


@pytest.mark.parametrize(
    ("held", "change", "why"),
    [
        (order(order_type="market", limit_price=None), patch(quantity=5), "market order"),
        (order(), patch(stop_price=95), "stop_price"),
        (
            order(order_type="stop", limit_price=None, stop_price=105),
            patch(limit_price=101),
            "limit_price",
        ),
        (order(filled_quantity=4, status="partially_filled"), patch(quantity=4), "already filled"),
        (order(filled_quantity=4, status="partially_filled"), patch(quantity=3), "already filled"),
        (order(), patch(quantity=10, limit_price=100), "nothing to change"),
    ],
)
def test_a_change_the_order_cannot_take_is_invalid(
    held: BrokerOrder, change: OrderReplace, why: str
) -> None:
    with pytest.raises(ReplaceInvalid) as caught:
        change_for(held, change)
    assert why in str(caught.value)


def test_only_what_changes_is_asked_for() -> None:
    held = order(filled_quantity=4, status="partially_filled")
    assert change_for(held, patch(quantity=5, limit_price=100)) == OrderChange(quantity=5)
    stop = order(order_type="stop_limit", stop_price=99)
    asked = change_for(stop, patch(stop_price=98))
    assert asked == OrderChange(stop_price=98)
    assert replaced(stop, asked).stop_price == Decimal(98)


@pytest.mark.parametrize(
    ("held", "change", "adds"),
    [
        (order(), OrderChange(quantity=11), True),
        (order(), OrderChange(quantity=9), False),
        (order(), OrderChange(limit_price=101), True),  # a buy limit higher: fills sooner
        (order(), OrderChange(limit_price=99), False),
        (order(side="sell"), OrderChange(limit_price=99), True),  # a sell limit lower
        (order(side="sell"), OrderChange(limit_price=101), False),
        (
            order(order_type="stop", limit_price=None, stop_price=105),
            OrderChange(stop_price=104),
            True,
        ),
        (
            order(order_type="stop", limit_price=None, stop_price=105),
            OrderChange(stop_price=106),
            False,
        ),
        (
            order(side="sell", order_type="stop", limit_price=None, stop_price=95),
            OrderChange(stop_price=96),
            True,
        ),
        (
            order(side="sell", order_type="stop", limit_price=None, stop_price=95),
            OrderChange(stop_price=94),
            False,
        ),
        # What counts is what is left to fill.
        (order(filled_quantity=4, status="partially_filled"), OrderChange(quantity=10), False),
    ],
)
def test_what_adds_exposure(held: BrokerOrder, change: OrderChange, adds: bool) -> None:
    assert adds_exposure(held, replaced(held, change)) is adds
