"""The IB adapter's book and mapping for orders a strategy manages: what IB's reports do to an
order (a Cancelled that filled, a modify's terms, a refused modify's error) and how stop types
cross to IB and back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ib_async import LimitOrder, Stock, Trade, TradeLogEntry
from ib_async import OrderStatus as IBStatus

from brokers.base import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from brokers.ib import mapping as m
from brokers.ib.book import TrackedOrder, apply_trade

NOW = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)


def tracked(qty: int = 10, kind: OrderType = OrderType.LIMIT) -> TrackedOrder:
    return TrackedOrder(client_order_id="c-1", order_id=7, symbol="AAPL", side=Side.BUY,
                        quantity=Decimal(qty), order_type=kind, limit_price=Decimal("190"),
                        time_in_force=TimeInForce.DAY, status=OrderStatus.ACCEPTED)  # fmt: skip


def trade(status: str, *, filled: float = 0, qty: float = 10, lmt: float = 190.0,
          error: int = 0) -> Trade:  # fmt: skip
    order = LimitOrder("BUY", qty, lmt, orderId=7, clientId=17, orderRef="c-1")
    log = [TradeLogEntry(NOW, status, f"Error {error}, reqId 7: no" if error else "", error)]
    return Trade(Stock("AAPL", "SMART", "USD"), order, IBStatus(orderId=7, status=status,
                 filled=filled, remaining=qty - filled), [], log)  # fmt: skip


def test_a_cancelled_report_then_the_executions_is_filled() -> None:
    order = tracked()
    assert apply_trade(order, trade("Cancelled"))  # IB's word first: nothing filled
    assert order.status is OrderStatus.CANCELED
    order.add_fill("e1", Decimal(10), Decimal("190"), NOW)  # the executions say otherwise
    assert order.status is OrderStatus.FILLED and order.snapshot().filled_quantity == 10


def test_a_cancelled_report_with_everything_filled_is_filled() -> None:
    order = tracked()
    apply_trade(order, trade("Cancelled", filled=10))
    assert order.status is OrderStatus.FILLED


def test_a_cancelled_order_with_part_filled_stays_cancelled() -> None:
    order = tracked()
    order.add_fill("e1", Decimal(4), Decimal("190"), NOW)
    apply_trade(order, trade("Cancelled", filled=4))
    assert order.status is OrderStatus.CANCELED and order.filled == 4


def test_an_error_cancel_during_a_modify_is_not_the_order_s_end() -> None:
    order = tracked()
    order.modifying = True
    assert not apply_trade(order, trade("Cancelled", error=201))
    assert order.status is OrderStatus.ACCEPTED
    order.modifying = False  # the same error with no modify in flight: IB refused the order
    assert apply_trade(order, trade("Cancelled", error=201))
    assert order.status is OrderStatus.REJECTED


def test_a_real_cancel_during_a_modify_still_counts() -> None:
    order = tracked()
    order.modifying = True
    assert apply_trade(order, trade("Cancelled", error=202))
    assert order.status is OrderStatus.CANCELED


def test_ib_s_terms_are_taken_from_its_open_order() -> None:
    order = tracked()
    assert apply_trade(order, trade("Submitted", qty=12, lmt=191.5))
    assert (order.quantity, order.limit_price) == (12, Decimal("191.5"))
    assert not apply_trade(order, trade("Submitted", qty=12, lmt=191.5))  # nothing new


@pytest.mark.parametrize(
    ("request_", "ib_type", "lmt", "aux"),
    [
        (
            OrderRequest(
                client_order_id="a",
                symbol="X",
                side="sell",
                quantity=1,
                order_type="stop",
                stop_price=9.5,
            ),
            "STP",
            None,
            9.5,
        ),
        (
            OrderRequest(
                client_order_id="a",
                symbol="X",
                side="sell",
                quantity=1,
                order_type="stop_limit",
                stop_price=9.5,
                limit_price=9.4,
            ),
            "STP LMT",
            9.4,
            9.5,
        ),
        (
            OrderRequest(
                client_order_id="a",
                symbol="X",
                side="buy",
                quantity=1,
                order_type="limit",
                limit_price=9.4,
            ),
            "LMT",
            9.4,
            None,
        ),
    ],
)
def test_stop_types_cross_to_ib_and_back(
    request_: OrderRequest, ib_type: str, lmt: float | None, aux: float | None
) -> None:
    ib = m.ib_order(request_, account="DU1")
    assert ib.orderType == ib_type and ib.orderRef == "a" and ib.transmit
    assert (m.price_or_none(ib.lmtPrice), m.price_or_none(ib.auxPrice)) == (
        m.price_or_none(lmt), m.price_or_none(aux))  # fmt: skip
    kind = m.order_type_of(ib.orderType)
    assert kind is request_.order_type
    assert m.limit_of(kind, ib.lmtPrice) == request_.limit_price
    assert m.stop_of(kind, ib.auxPrice) == request_.stop_price


def test_an_ib_order_type_this_adapter_never_sends_is_not_guessed() -> None:
    assert m.order_type_of("TRAIL") is None
    assert m.order_type_of("MKT") is OrderType.MARKET
