"""The Alpaca adapter's ledger and request builders, without I/O: replace chains reported
under the gateway's client_order_id with the quantities of the whole chain, fills reported as
deltas exactly once with stable ids, and changes Alpaca cannot make refused naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.alpaca.changes import bracket_request, replace_request
from brokers.alpaca.ledger import Ledger
from brokers.alpaca.models import UnparsableAnswer, parse_order
from brokers.base import BrokerOrder, OrderChange, OrderRequest, OrderStatus, TimeInForce
from brokers.errors import OrderRejected
from tests.fakes.alpaca_streams import order_json


def limit(order_id: str, coid: str, **fields: Any) -> dict[str, Any]:
    avg = fields.pop("avg", None)
    fields.setdefault("limit_price", "100")
    raw = order_json(order_id, coid, order_type="limit", **fields)
    raw["filled_avg_price"] = avg
    return raw


def update(event: str, raw: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"event": event, "order": raw, "timestamp": "2023-11-06T15:31:02Z", **fields}


def test_a_replacing_order_is_viewed_as_the_whole_chain() -> None:
    ledger = Ledger()
    old = limit("a", "sig-1", status="replaced", filled_qty="4", avg="100", replaced_by="b")
    new = limit("b", "alpaca-made", qty="6", filled_qty="2", avg="101", replaces="a")
    ledger.link(old, new)
    view = ledger.view(new)
    assert (view.client_order_id, view.broker_order_id) == ("sig-1", "b")
    assert (view.quantity, view.filled_quantity) == (Decimal(10), Decimal(6))
    assert view.avg_fill_price == (4 * Decimal(100) + 2 * Decimal(101)) / 6
    assert ledger.live_id("sig-1") == "b" and ledger.live_id("unknown") is None
    # an order the ledger knows nothing of is reported as Alpaca has it, untouched
    plain = limit("c", "sig-2")
    assert ledger.view(plain) == parse_order(plain)


def test_fills_are_deltas_reported_once_with_stable_ids() -> None:
    ledger = Ledger()
    part = limit("a", "sig-1", status="partially_filled", filled_qty="4", avg="100")
    (first,) = ledger.trade_update(
        update("partial_fill", part, qty="4", price="100", execution_id="x1")
    )
    assert first.fill is not None and (first.fill.quantity, first.fill.fill_id) == (4, "x1")
    assert ledger.trade_update(update("partial_fill", part, qty="4", price="100")) == []
    # an update missed in between: the whole delta, at the price the average implies
    done = limit("a", "sig-1", status="filled", filled_qty="10", avg="101.2")
    (last,) = ledger.trade_update(update("fill", done, qty="3", price="102", execution_id="x3"))
    assert last.fill is not None and last.fill.quantity == 6
    assert last.fill.price == (Decimal("101.2") * 10 - 400) / 6  # 102: the 3 and 3 more
    assert last.fill.fill_id == "a:10"  # the execution id names only 3 of the 6
    assert last.order.status is OrderStatus.FILLED


def test_a_cancel_after_an_unreported_fill_still_reports_the_fill() -> None:
    ledger = Ledger()
    gone = limit("a", "sig-1", status="canceled", filled_qty="2", avg="99.5")
    (event,) = ledger.trade_update(update("canceled", gone))
    assert event.order.status is OrderStatus.CANCELED
    assert event.fill is not None and (event.fill.quantity, event.fill.price) == (
        2,
        Decimal("99.5"),
    )
    assert event.reason is None


def test_replaced_is_the_replacing_order_and_never_a_cancel() -> None:
    ledger = Ledger()
    old = limit("a", "sig-1", status="new")
    new = limit("b", "alpaca-made", status="pending_new", replaces="a")
    ledger.link(old, new)
    (event,) = ledger.trade_update(
        update("replaced", {**old, "status": "replaced", "replaced_by": "b"})
    )
    assert event.reason == "replaced" and event.order.status is OrderStatus.NEW
    assert (event.order.client_order_id, event.order.broker_order_id) == ("sig-1", "b")
    # a replace the ledger did not see (made elsewhere): linked, nothing reported yet
    other = Ledger()
    assert (
        other.trade_update(update("replaced", {**old, "status": "replaced", "replaced_by": "b"}))
        == []
    )
    assert other.view(new).client_order_id == "sig-1"


def test_a_refused_replacing_order_gives_the_chain_back_to_the_original() -> None:
    ledger = Ledger()
    old = limit("a", "sig-1", status="new")
    new = limit("b", "alpaca-made", status="pending_new", replaces="a")
    ledger.link(old, new)
    (event,) = ledger.trade_update(update("rejected", {**new, "status": "rejected"}))
    assert event.reason == "replace_rejected" and event.order.broker_order_id == "a"
    assert event.order.status is OrderStatus.NEW and ledger.live_id("sig-1") == "a"


def test_pending_replace_keeps_the_status_it_had() -> None:
    ledger = Ledger()
    ledger.trade_update(update("new", limit("a", "sig-1", status="new")))
    (event,) = ledger.trade_update(
        update("pending_replace", limit("a", "sig-1", status="pending_replace"))
    )
    assert event.order.status is OrderStatus.NEW and event.reason == "pending_replace"


def test_recovered_fills_skip_what_was_reported_and_end_in_the_state_now() -> None:
    ledger = Ledger()
    ledger.trade_update(
        update(
            "partial_fill",
            limit("a", "sig-1", status="partially_filled", filled_qty="4", avg="100"),
            qty="4",
            price="100",
        )
    )
    activities = [
        {"cum_qty": c, "qty": q, "price": p, "transaction_time": "2023-11-06T15:40:00Z"}
        for c, q, p in (("4", "4", "100"), ("7", "3", "101"), ("9", "2", "102"))
    ]
    now = limit("a", "sig-1", status="canceled", filled_qty="9", avg="100.77")
    events = ledger.recovered(now, activities)
    assert [(e.fill.quantity, e.fill.price, e.fill.fill_id) for e in events if e.fill] == [
        (3, Decimal(101), "a:7"),
        (2, Decimal(102), "a:9"),
    ]
    assert events[0].order.status is OrderStatus.PARTIALLY_FILLED
    assert events[0].order.filled_quantity == 7
    assert events[0].order.avg_fill_price == (400 + 303) / Decimal(7)  # as it stood then
    assert events[-1].order.status is OrderStatus.CANCELED  # the state now
    assert ledger.recovered(now, activities) == []  # asked again: nothing new


def resting(**fields: Any) -> BrokerOrder:
    base: dict[str, Any] = {
        "client_order_id": "sig-1",
        "broker_order_id": "a",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 10,
        "status": "new",
        "order_type": "limit",
        "limit_price": 100,
    }
    return BrokerOrder(**{**base, **fields})


@pytest.mark.parametrize(
    ("order", "change", "field"),
    [
        (resting(status="filled", filled_quantity=10), OrderChange(limit_price=1), "filled"),
        (resting(order_type="market", limit_price=None), OrderChange(quantity=5), "order_type"),
        (resting(), OrderChange(stop_price=99), "stop_price"),
        (
            resting(order_type="stop", limit_price=None, stop_price=90),
            OrderChange(limit_price=1),
            "limit_price",
        ),
        (
            resting(filled_quantity=4, status="partially_filled"),
            OrderChange(quantity=4),
            "quantity",
        ),
        (resting(), OrderChange(quantity="10.5"), "quantity"),
    ],
)
def test_changes_alpaca_cannot_make_are_refused_naming_the_field(
    order: BrokerOrder, change: OrderChange, field: str
) -> None:
    with pytest.raises(OrderRejected, match=field):
        replace_request(order, change)


def test_replace_request_sends_the_remaining_quantity() -> None:
    partly = resting(filled_quantity=4, status="partially_filled")
    assert replace_request(partly, OrderChange(limit_price=101)).to_request_fields() == {
        "qty": 6,
        "limit_price": 101.0,
    }
    assert replace_request(resting(), OrderChange(limit_price=101)).to_request_fields() == {
        "limit_price": 101.0
    }
    assert replace_request(partly, OrderChange(quantity=12)).to_request_fields() == {"qty": 8}


def test_bracket_request_class_follows_its_exits() -> None:
    entry = OrderRequest(client_order_id="e", symbol="AAPL", side="sell", quantity=2)
    stop = OrderRequest(
        client_order_id="s",
        symbol="AAPL",
        side="buy",
        quantity=2,
        order_type="stop",
        stop_price=110,
    )
    profit = OrderRequest(
        client_order_id="t",
        symbol="AAPL",
        side="buy",
        quantity=2,
        order_type="limit",
        limit_price=90,
    )
    both = bracket_request(entry, stop, profit).to_request_fields()
    assert both["order_class"] == "bracket" and both["side"] == "sell"
    assert both["stop_loss"] == {"stop_price": 110.0} and both["take_profit"] == {
        "limit_price": 90.0
    }
    only_profit = bracket_request(entry, None, profit).to_request_fields()
    assert only_profit["order_class"] == "oto" and "stop_loss" not in only_profit
    ioc = entry.model_copy(update={"time_in_force": TimeInForce.IOC})
    with pytest.raises(OrderRejected, match="time_in_force"):
        bracket_request(ioc, stop, None)
    with pytest.raises(OrderRejected, match=r"stop_loss\.symbol"):
        bracket_request(entry, stop.model_copy(update={"symbol": "MSFT"}), None)


def test_a_fill_that_beats_a_replace_ends_filled_not_reopened() -> None:
    """Alpaca: if the old order fills before the replacing order reaches the venue, the
    replacing order is rejected. The gateway's order is filled, once."""
    ledger = Ledger()
    old = limit("a", "sig-1", status="new")
    ledger.link(old, limit("b", "alpaca-made", status="pending_new", replaces="a"))
    done = limit("a", "sig-1", status="filled", filled_qty="10", avg="100")
    (filled,) = ledger.trade_update(update("fill", done, qty="10", price="100"))
    assert filled.order.status is OrderStatus.FILLED and filled.fill is not None
    refused = limit("b", "alpaca-made", status="rejected", replaces="a")
    (after,) = ledger.trade_update(update("rejected", refused))
    assert after.reason == "replace_rejected" and after.fill is None
    assert after.order.status is OrderStatus.FILLED and after.order.broker_order_id == "a"
    assert after.order.filled_quantity == 10


def test_recovered_fills_of_a_replaced_order_end_in_the_replacing_orders_state() -> None:
    ledger = Ledger()
    old = limit("a", "sig-1", status="replaced", filled_qty="3", avg="100", replaced_by="b")
    new = limit("b", "alpaca-made", qty="7", status="new", replaces="a")
    ledger.link(old, new)
    act = {"cum_qty": "3", "qty": "3", "price": "100", "transaction_time": "2023-11-06T15:40:00Z"}
    (event,) = ledger.recovered(old, [act], new)
    assert event.fill is not None and event.fill.broker_order_id == "a"
    assert event.order.status is OrderStatus.NEW and event.order.broker_order_id == "b"
    assert (event.order.quantity, event.order.filled_quantity) == (10, 3)


def test_a_late_replaced_event_never_moves_the_live_order_back() -> None:
    ledger = Ledger()
    a, b = limit("a", "sig-1"), limit("b", "x-b", replaces="a")
    c = limit("c", "x-c", limit_price="101", replaces="b")
    ledger.link(a, b)
    ledger.link(b, c)
    (event,) = ledger.trade_update(
        update("replaced", {**a, "status": "replaced", "replaced_by": "b"})
    )
    assert event.order.broker_order_id == "c" and ledger.live_id("sig-1") == "c"


def test_a_fill_of_the_old_order_while_the_replace_is_pending_shows_the_live_order() -> None:
    ledger = Ledger()
    ledger.link(limit("a", "sig-1"), limit("b", "x-b", status="pending_new", replaces="a"))
    part = limit("a", "sig-1", status="pending_replace", filled_qty="2", avg="100")
    (event,) = ledger.trade_update(update("partial_fill", part, qty="2", price="100"))
    assert event.fill is not None and event.fill.broker_order_id == "a"
    assert event.order.broker_order_id == "b" and event.order.filled_quantity == 2
    # B trades its own 10 from zero: the gateway's order now stands at 12, honestly
    assert event.order.quantity == 12


@pytest.mark.parametrize(
    "broken", [{"side": "sideways"}, {"symbol": None}, {"filled_avg_price": None, "qty": None}]
)
def test_a_malformed_fill_update_counts_nothing(broken: dict[str, Any]) -> None:
    """The stream logs an update it cannot read and goes on; the fill it carried must still
    be reported by the next good update, not lost as 'reported already'."""
    ledger = Ledger()
    part = limit("a", "sig-1", status="partially_filled", filled_qty="4", avg="100")
    with pytest.raises(UnparsableAnswer):
        ledger.trade_update(update("partial_fill", {**part, **broken}, qty="4", price="100"))
    (event,) = ledger.trade_update(update("partial_fill", part, qty="4", price="100"))
    assert event.fill is not None and event.fill.quantity == 4
