"""Alpaca request bodies for changing an order and for brackets, refused here (naming the
field) when Alpaca could not take them, so nothing is sent.

- A replace (PATCH /v2/orders/{id}) sends ``qty`` whenever something filled or the quantity
  changes: Alpaca's replacing order trades its ``qty`` from zero (alpacahq/Alpaca-API#165), so
  ``qty`` is what remains of the gateway's quantity; Alpaca replaces whole shares only
  (alpaca-py's ``ReplaceOrderRequest.qty`` is an int).
- A bracket (POST /v2/orders) is ``order_class`` bracket with both exits, oto with one; the
  exits are on the other side, for the entry's quantity and symbol; day or gtc only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderClass
from alpaca.trading.requests import ReplaceOrderRequest, StopLossRequest, TakeProfitRequest

from brokers.alpaca.models import order_request
from brokers.base import BrokerOrder, OrderChange, OrderRequest, OrderType, Side, TimeInForce
from brokers.errors import OrderRejected

NOT_OPEN = "order_not_open"
INVALID_CHANGE = "invalid_change"


def replace_request(order: BrokerOrder, change: OrderChange) -> ReplaceOrderRequest:
    """Alpaca's PATCH body for ``change`` of ``order`` (the gateway's view); a change Alpaca
    cannot make is refused here, naming the field, before anything is sent."""
    if not order.is_open:
        raise OrderRejected(
            f"order {order.client_order_id} is {order.status}: nothing to replace", code=NOT_OPEN
        )
    if order.order_type is OrderType.MARKET:
        raise OrderRejected("order_type: a market order cannot be replaced", code=INVALID_CHANGE)
    if change.limit_price is not None and not order.order_type.has_limit:
        raise OrderRejected(
            f"limit_price: a {order.order_type} order has no limit price", code=INVALID_CHANGE
        )
    if change.stop_price is not None and not order.order_type.has_stop:
        raise OrderRejected(
            f"stop_price: a {order.order_type} order has no stop price", code=INVALID_CHANGE
        )
    total = change.quantity if change.quantity is not None else order.quantity
    if total <= order.filled_quantity:
        raise OrderRejected(
            f"quantity: {total} is not above the {order.filled_quantity} already filled",
            code=INVALID_CHANGE,
        )
    remaining = total - order.filled_quantity
    send_qty = change.quantity is not None or order.filled_quantity > 0
    if send_qty and remaining != remaining.to_integral_value():
        raise OrderRejected(
            f"quantity: Alpaca replaces whole shares only ({remaining} would remain)",
            code=INVALID_CHANGE,
        )
    return ReplaceOrderRequest(
        qty=int(remaining) if send_qty else None,
        limit_price=None if change.limit_price is None else float(change.limit_price),
        stop_price=None if change.stop_price is None else float(change.stop_price),
    )


def _check_leg(entry: OrderRequest, leg: OrderRequest, name: str, types: set[OrderType]) -> None:
    exit_side = Side.SELL if entry.side is Side.BUY else Side.BUY
    if leg.side is not exit_side:
        raise OrderRejected(f"{name}.side: must be {exit_side} for a {entry.side} entry")
    if leg.quantity != entry.quantity:
        raise OrderRejected(f"{name}.quantity: must be the entry's ({entry.quantity})")
    if leg.order_type not in types:
        allowed = " or ".join(sorted(t.value for t in types))
        raise OrderRejected(f"{name}.order_type: must be {allowed}, not {leg.order_type}")
    if leg.symbol != entry.symbol:
        raise OrderRejected(f"{name}.symbol: must be the entry's ({entry.symbol})")


def bracket_request(
    entry: OrderRequest, stop_loss: OrderRequest | None, take_profit: OrderRequest | None
) -> Any:
    """alpaca-py's request for an entry with its exits (bracket: both; oto: one)."""
    if stop_loss is None and take_profit is None:
        raise OrderRejected("stop_loss, take_profit: a bracket needs at least one exit")
    if entry.order_type is OrderType.MARKET and TimeInForce.GTC in (
        leg.time_in_force for leg in (stop_loss, take_profit) if leg is not None
    ):
        # Alpaca gives a bracket's legs the entry's time in force. A market entry fills at
        # once, so its own (day, or ioc) is moot: gtc keeps exits asked for as gtc alive
        # past the close, and lets an ioc market entry carry a bracket at all.
        entry = entry.model_copy(update={"time_in_force": TimeInForce.GTC})
    if entry.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        raise OrderRejected("time_in_force: Alpaca takes brackets as day or gtc only")
    extra: dict[str, Any] = {
        "order_class": OrderClass.BRACKET if stop_loss and take_profit else OrderClass.OTO
    }
    if stop_loss is not None:
        _check_leg(entry, stop_loss, "stop_loss", {OrderType.STOP, OrderType.STOP_LIMIT})
        extra["stop_loss"] = StopLossRequest(
            stop_price=float(stop_loss.stop_price or Decimal(0)),
            limit_price=None if stop_loss.limit_price is None else float(stop_loss.limit_price),
        )
    if take_profit is not None:
        _check_leg(entry, take_profit, "take_profit", {OrderType.LIMIT})
        extra["take_profit"] = TakeProfitRequest(
            limit_price=float(take_profit.limit_price or Decimal(0))
        )
    return order_request(entry, **extra)
