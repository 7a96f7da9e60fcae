"""The translation of Alpaca's JSON into base types, case by case (no I/O)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from brokers.alpaca.models import (
    UnparsableAnswer,
    map_status,
    order_request,
    parse_cancel_report,
    parse_orders,
    parse_position,
    parse_trade_update,
)
from brokers.base import OrderRequest, OrderStatus, OrderType, TimeInForce
from tests.fakes.alpaca_streams import order_json

TEN, FOUR, ZERO = Decimal(10), Decimal(4), Decimal(0)


@pytest.mark.parametrize(
    ("alpaca", "filled", "expected"),
    [
        ("new", ZERO, OrderStatus.NEW),
        ("pending_new", ZERO, OrderStatus.NEW),
        ("accepted", ZERO, OrderStatus.ACCEPTED),
        ("accepted_for_bidding", ZERO, OrderStatus.ACCEPTED),
        ("held", ZERO, OrderStatus.ACCEPTED),
        ("partially_filled", FOUR, OrderStatus.PARTIALLY_FILLED),
        ("filled", TEN, OrderStatus.FILLED),
        ("canceled", FOUR, OrderStatus.CANCELED),
        ("replaced", ZERO, OrderStatus.CANCELED),
        ("expired", ZERO, OrderStatus.EXPIRED),
        ("rejected", ZERO, OrderStatus.REJECTED),
        ("pending_cancel", ZERO, OrderStatus.PENDING_CANCEL),
        ("done_for_day", FOUR, OrderStatus.PARTIALLY_FILLED),
        ("done_for_day", ZERO, OrderStatus.ACCEPTED),
        ("stopped", ZERO, OrderStatus.ACCEPTED),
        ("suspended", ZERO, OrderStatus.ACCEPTED),
        ("pending_replace", FOUR, OrderStatus.PARTIALLY_FILLED),
        ("calculated", TEN, OrderStatus.FILLED),
        ("calculated", FOUR, OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_status_mapping(alpaca: str, filled: Decimal, expected: OrderStatus) -> None:
    assert map_status(alpaca, TEN, filled) is expected


def test_unknown_status_is_open_by_fills_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert map_status("brand_new_state", TEN, ZERO) is OrderStatus.ACCEPTED
    assert "brand_new_state" in caplog.text


def test_short_position_is_negative_even_if_qty_came_unsigned() -> None:
    position = parse_position(
        {
            "symbol": "TSLA",
            "qty": "5",
            "side": "short",
            "avg_entry_price": "250.1",
            "current_price": None,
        }
    )
    assert position.qty == -5 and position.market_price is None


def test_cancel_report_failure_without_body_names_the_status() -> None:
    report = parse_cancel_report(
        [
            {"id": "a", "status": 200},
            {"id": "b", "status": 404},
            {"id": "c", "status": 500, "body": {"message": "busy"}},
        ]
    )
    assert report.cancelled == ["a"] and report.failed == {"b": "HTTP 404", "c": "busy"}
    assert parse_cancel_report(None).cancelled == []


def test_notional_orders_are_left_out_not_guessed(caplog: pytest.LogCaptureFixture) -> None:
    notional = {**order_json("n-1", "manual"), "qty": None, "notional": "500"}
    orders = parse_orders([notional, order_json("o-1", "sig-1")])
    assert [o.broker_order_id for o in orders] == ["o-1"]
    assert "notional" in caplog.text


def test_stop_and_odd_time_in_force_parse_to_the_nearest_base_value() -> None:
    stop_limit = parse_orders(
        [
            {
                **order_json(
                    "s-1", "x", order_type="stop_limit", limit_price="10.5", stop_price="10.6"
                ),
                "time_in_force": "fok",
            }
        ]
    )[0]
    assert stop_limit.order_type is OrderType.STOP_LIMIT
    assert (stop_limit.limit_price, stop_limit.stop_price) == (Decimal("10.5"), Decimal("10.6"))
    assert stop_limit.time_in_force is TimeInForce.IOC
    with pytest.raises(UnparsableAnswer):
        parse_orders([order_json("l-1", "y", order_type="limit", limit_price=None)])


def test_trade_update_reasons() -> None:
    refused = parse_trade_update(
        {"event": "order_cancel_rejected", "order": order_json("o", "c", status="new")}
    )
    assert refused.reason == "order_cancel_rejected" and refused.order.is_open
    assert parse_trade_update({"event": "new", "order": order_json("o", "c")}).reason is None


def test_order_request_carries_client_id_and_limit() -> None:
    request = order_request(
        OrderRequest(
            client_order_id="gw-1",
            symbol="AAPL",
            side="sell",
            quantity=3,
            order_type="limit",
            limit_price="10.25",
            time_in_force="ioc",
        )
    )
    fields = request.to_request_fields()
    assert fields["client_order_id"] == "gw-1" and fields["limit_price"] == 10.25
    assert fields["time_in_force"] == "ioc" and fields["side"] == "sell" and fields["qty"] == 3.0
