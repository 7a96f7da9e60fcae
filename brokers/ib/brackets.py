"""The shape of an IB bracket: what ``IBBroker.submit_bracket`` accepts, checked before
anything is sent.

A bracket is an entry and one or two exits for the same symbol and quantity on the other side:
a stop loss (stop or stop_limit) and a take profit (limit). For a buy entry the stop lies below
the take profit, and below the entry's own price when it has one (its limit, else its stop);
for a sell entry the other way round. A bracket that breaks this is refused with
``OrderRejected``: code ``bracket_invalid`` for its shape, ``protective_price_invalid`` for its
prices, the message naming the field.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from brokers.base import OrderRequest, OrderType, Side
from brokers.errors import OrderRejected

# One Cancels All, type 2: a fill of one exit reduces the other by as much ("with block": IB
# routes one exit at a time, so both can never fill). Type 1 would cancel the stop on a partial
# fill of the take profit and leave the rest of the position unprotected.
OCA_TYPE = 2


def oca_group(entry_client_order_id: str) -> str:
    """The OCA group of a bracket's exits: one per entry, the same on a retry."""
    return f"oca-{entry_client_order_id}"


def _refuse(message: str, code: str = "bracket_invalid") -> OrderRejected:
    return OrderRejected(message, code=code)


def _check_leg(entry: OrderRequest, leg: OrderRequest, role: str, types: set[OrderType]) -> None:
    if leg.symbol != entry.symbol:
        raise _refuse(f"{role}.symbol: {leg.symbol!r} is not the entry's {entry.symbol!r}")
    if leg.side is entry.side:
        raise _refuse(f"{role}.side: an exit of a {entry.side.value} entry is a "
                      f"{'sell' if entry.side is Side.BUY else 'buy'}")  # fmt: skip
    if leg.quantity != entry.quantity:
        raise _refuse(f"{role}.quantity: {leg.quantity} is not the entry's {entry.quantity}")
    if leg.order_type not in types:
        allowed = " or ".join(sorted(t.value for t in types))
        raise _refuse(f"{role}.order_type: {leg.order_type.value}, not {allowed}")
    if leg.client_order_id == entry.client_order_id:
        raise _refuse(f"{role}.client_order_id: the entry's own")


def check_bracket(
    entry: OrderRequest, stop_loss: OrderRequest | None, take_profit: OrderRequest | None
) -> None:
    """Refuse a malformed bracket (see the module docstring)."""
    if stop_loss is None and take_profit is None:
        raise _refuse("stop_loss, take_profit: a bracket needs at least one exit")
    if stop_loss is not None:
        _check_leg(entry, stop_loss, "stop_loss", {OrderType.STOP, OrderType.STOP_LIMIT})
    if take_profit is not None:
        _check_leg(entry, take_profit, "take_profit", {OrderType.LIMIT})
    if (
        stop_loss is not None
        and take_profit is not None
        and stop_loss.client_order_id == take_profit.client_order_id
    ):
        raise _refuse("take_profit.client_order_id: the stop loss's own")
    stop = stop_loss.stop_price if stop_loss is not None else None
    target = take_profit.limit_price if take_profit is not None else None
    entry_price = entry.limit_price or entry.stop_price
    # from low to high for a buy entry, high to low for a sell; None: not given
    ladder: list[tuple[str, Decimal | None]] = [
        ("stop_loss.stop_price", stop),
        ("entry price", entry_price),
        ("take_profit.limit_price", target),
    ]
    given = [(name, price) for name, price in ladder if price is not None]
    buy = entry.side is Side.BUY
    for (name, price), (above_name, above) in itertools.pairwise(given):
        if (price >= above) if buy else (price <= above):
            raise _refuse(
                f"{name}: {price} must lie {'below' if buy else 'above'} the {above_name} "
                f"({above})",
                code="protective_price_invalid",
            )
