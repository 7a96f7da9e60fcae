"""Alpaca's JSON (REST answers and stream messages) translated into ``brokers.base`` types,
and our ``OrderRequest`` into alpaca-py's request model.

Pure functions, no I/O. They read the raw JSON rather than alpaca-py's models because Alpaca
sends numbers as strings ("qty": "1", "equity": "100501.88"): reading them straight into
``Decimal`` keeps them exact, where alpaca-py's models go through ``float``; and because
alpaca-py's models refuse values Alpaca really sends (``"order_class": ""``).

Order status mapping (Alpaca -> ``OrderStatus``); an order that may still trade stays open:

    new, pending_new                          -> new       (pending_new: routed, not yet acked)
    accepted, accepted_for_bidding, held      -> accepted
    partially_filled                          -> partially_filled
    filled                                    -> filled
    canceled                                  -> canceled
    replaced                                  -> canceled  (superseded by a new order; the
                                                 adapter reports the replacing order instead,
                                                 see alpaca_ledger)
    expired                                   -> expired
    rejected                                  -> rejected
    pending_cancel                            -> pending_cancel
    done_for_day, stopped, suspended,
    pending_replace, calculated, unknown      -> filled when filled_qty >= qty, else
                                                 partially_filled when filled_qty > 0, else accepted
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderSide
from alpaca.trading.enums import TimeInForce as AlpacaTimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)

from brokers.base import (
    Account,
    BrokerOrder,
    CancelReport,
    Fill,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Side,
    TimeInForce,
    to_decimal,
)
from brokers.errors import BrokerError

log = logging.getLogger(__name__)

_STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
}

# Alpaca's order types and times in force beyond the ones the gateway uses: the closest base
# value, so orders placed outside the gateway (a trailing stop, an "opg" order) still parse.
_ORDER_TYPE = {
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}
_TIF = {
    "day": TimeInForce.DAY,
    "gtc": TimeInForce.GTC,
    "ioc": TimeInForce.IOC,
    "fok": TimeInForce.IOC,
    "opg": TimeInForce.DAY,
    "cls": TimeInForce.DAY,
}


class UnparsableAnswer(BrokerError):
    """An answer that does not have the shape Alpaca documents (a field missing or malformed)."""


def _dec(value: Any, field: str) -> Decimal:
    try:
        return to_decimal(value)
    except (ValueError, TypeError) as exc:
        raise UnparsableAnswer(f"{field}: not a number: {value!r}") from exc


def _opt_dec(value: Any, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    return _dec(value, field)


def _positive_or_none(value: Any, field: str) -> Decimal | None:
    parsed = _opt_dec(value, field)
    return parsed if parsed is not None and parsed > 0 else None


def _req(data: Mapping[str, Any], field: str) -> Any:
    try:
        value = data[field]
    except (KeyError, TypeError) as exc:
        raise UnparsableAnswer(f"answer lacks {field!r}") from exc
    if value is None:
        raise UnparsableAnswer(f"answer has {field!r} = null")
    return value


def parse_ts(value: Any) -> datetime:
    """RFC 3339 text (nanoseconds allowed) or a datetime; always timezone-aware UTC."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError as exc:
            raise UnparsableAnswer(f"not a timestamp: {value!r}") from exc
    else:
        raise UnparsableAnswer(f"not a timestamp: {value!r}")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def map_status(raw: str, quantity: Decimal, filled: Decimal) -> OrderStatus:
    status = _STATUS.get(raw)
    if status is not None:
        return status
    if raw not in {"done_for_day", "stopped", "suspended", "pending_replace", "calculated"}:
        log.warning("unknown Alpaca order status %r: treated by its fills", raw)
    if filled >= quantity:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


def parse_order(data: Mapping[str, Any]) -> BrokerOrder:
    quantity = _dec(_req(data, "qty"), "qty")
    filled = _opt_dec(data.get("filled_qty"), "filled_qty") or Decimal(0)
    raw_type = str(data.get("type") or data.get("order_type") or "market")
    order_type = _ORDER_TYPE.get(raw_type, OrderType.MARKET)
    limit_price = _positive_or_none(data.get("limit_price"), "limit_price")
    stop_price = _positive_or_none(data.get("stop_price"), "stop_price")
    if order_type.has_limit and limit_price is None:
        raise UnparsableAnswer(f"{order_type} order {data.get('id')} without limit_price")
    if order_type.has_stop and stop_price is None:
        raise UnparsableAnswer(f"{order_type} order {data.get('id')} without stop_price")
    try:
        return BrokerOrder(
            client_order_id=str(_req(data, "client_order_id")),
            broker_order_id=str(_req(data, "id")),
            symbol=str(_req(data, "symbol")),
            side=Side(str(_req(data, "side"))),
            quantity=quantity,
            filled_quantity=filled,
            status=map_status(str(_req(data, "status")), quantity, filled),
            limit_price=limit_price if order_type.has_limit else None,
            avg_fill_price=_positive_or_none(data.get("filled_avg_price"), "filled_avg_price"),
            order_type=order_type,
            time_in_force=_TIF.get(str(data.get("time_in_force")), TimeInForce.DAY),
            stop_price=stop_price if order_type.has_stop else None,
        )
    except ValueError as exc:  # pydantic's ValidationError and an unknown side
        raise UnparsableAnswer(f"order {data.get('id')}: {exc}") from exc


def parse_orders(data: Any) -> list[BrokerOrder]:
    """A list answer; an order without a quantity (a notional order placed outside the gateway)
    cannot be a ``BrokerOrder``: it is logged loudly and left out, never guessed."""
    if not isinstance(data, list):
        raise UnparsableAnswer(f"expected a list of orders, got {type(data).__name__}")
    orders = []
    for item in data:
        if isinstance(item, Mapping) and item.get("qty") is None and item.get("notional"):
            log.warning("order %s is notional (no qty): left out of the order list", item.get("id"))
            continue
        orders.append(parse_order(item))
    return orders


AlpacaOrderRequest = (
    MarketOrderRequest | LimitOrderRequest | StopOrderRequest | StopLimitOrderRequest
)


def order_request(order: OrderRequest, **extra: Any) -> AlpacaOrderRequest:
    """alpaca-py's request model for our order; ``client_order_id`` is always the gateway's.
    ``extra`` goes to the model as is (``order_class``, ``stop_loss``, ``take_profit``)."""
    common: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": float(order.quantity),  # alpaca-py's field is a float; it sends a JSON number
        "side": OrderSide(order.side.value),
        "time_in_force": AlpacaTimeInForce(order.time_in_force.value),
        "client_order_id": order.client_order_id,
        **extra,
    }
    # alpaca-py's price fields are floats (sent as JSON numbers); check_limit_price guarantees
    # that each price below is set for its type.
    limit = float(order.limit_price) if order.limit_price is not None else 0.0
    stop = float(order.stop_price) if order.stop_price is not None else 0.0
    if order.order_type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=limit, **common)
    if order.order_type is OrderType.STOP:
        return StopOrderRequest(stop_price=stop, **common)
    if order.order_type is OrderType.STOP_LIMIT:
        return StopLimitOrderRequest(limit_price=limit, stop_price=stop, **common)
    return MarketOrderRequest(**common)


def parse_account(data: Mapping[str, Any]) -> Account:
    return Account(
        equity=_dec(_req(data, "equity"), "equity"),
        cash=_dec(_req(data, "cash"), "cash"),
        buying_power=_dec(_req(data, "buying_power"), "buying_power"),
        day_start_equity=_opt_dec(data.get("last_equity"), "last_equity"),
    )


def parse_position(data: Mapping[str, Any]) -> Position:
    qty = _dec(_req(data, "qty"), "qty")
    # Alpaca sends a short as side "short" with a negative qty; make the sign hold either way.
    if str(data.get("side", "")).lower() == "short" and qty > 0:
        qty = -qty
    return Position(
        symbol=str(_req(data, "symbol")),
        qty=qty,
        avg_price=abs(_dec(_req(data, "avg_entry_price"), "avg_entry_price")),
        market_price=_opt_dec(data.get("current_price"), "current_price"),
    )


def parse_positions(data: Any) -> list[Position]:
    if not isinstance(data, list):
        raise UnparsableAnswer(f"expected a list of positions, got {type(data).__name__}")
    return [parse_position(item) for item in data]


def parse_cancel_report(data: Any) -> CancelReport:
    """DELETE /v2/orders answers 207 with ``[{"id", "status", "body"?}]``: 200 is cancelled,
    anything else failed with the body's message (or the status when there is no body)."""
    if data is None:  # an empty body: there was nothing to cancel
        return CancelReport()
    if not isinstance(data, list):
        raise UnparsableAnswer(f"expected a list of cancel results, got {type(data).__name__}")
    cancelled: list[str] = []
    failed: dict[str, str] = {}
    for entry in data:
        order_id = str(_req(entry, "id"))
        status = entry.get("status")
        if status == 200:
            cancelled.append(order_id)
            continue
        body = entry.get("body")
        message = body.get("message") if isinstance(body, Mapping) else body
        failed[order_id] = str(message) if message else f"HTTP {status}"
    return CancelReport(cancelled=cancelled, failed=failed)


def parse_latest_quote(symbol: str, data: Any) -> Quote:
    """The ``quotes`` map of GET /v2/stocks/quotes/latest (alpaca-py strips the outer key)."""
    entry = data.get(symbol) if isinstance(data, Mapping) else None
    if not isinstance(entry, Mapping):
        raise BrokerError(f"no quote for {symbol}", code="quote_missing")
    return parse_quote_message(symbol, entry)


def parse_quote_message(symbol: str, data: Mapping[str, Any]) -> Quote:
    """A quote from REST or the data stream: ``bp``/``ap`` numbers, ``t`` RFC 3339 or datetime."""
    try:
        return Quote(
            symbol=symbol, bid=_req(data, "bp"), ask=_req(data, "ap"), ts=parse_ts(_req(data, "t"))
        )
    except ValueError as exc:
        raise UnparsableAnswer(f"quote for {symbol}: {exc}") from exc


def parse_trade_update(data: Mapping[str, Any]) -> OrderEvent:
    """One ``trade_updates`` message's ``data``: the order's new state, with a ``Fill`` for
    fill/partial_fill (``qty``/``price`` there are the fill's, not the order's)."""
    event = str(_req(data, "event"))
    order = parse_order(_req(data, "order"))
    fill = None
    if event in {"fill", "partial_fill"}:
        fill = Fill(
            client_order_id=order.client_order_id,
            broker_order_id=order.broker_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=_dec(_req(data, "qty"), "qty"),
            price=_dec(_req(data, "price"), "price"),
            ts=parse_ts(data.get("timestamp") or _req(data["order"], "updated_at")),
            fill_id=str(data.get("execution_id") or ""),
        )
    # The event name is the reason when it says more than the status (rejected, a refused
    # cancel or replace, a restatement).
    reason = (
        None
        if event
        in {"new", "fill", "partial_fill", "canceled", "expired", "pending_new", "pending_cancel"}
        else event
    )
    return OrderEvent(order=order, fill=fill, reason=reason)
