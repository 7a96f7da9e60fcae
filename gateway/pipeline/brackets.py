"""A bracket's legs: the exits an entry carries to the broker (stop loss, take profit).

The legs are built from the admitted entry and its protection, named after the entry
(``<entry>-sl``, ``<entry>-tp``), journaled with it and sent with it in one broker call
(``submit_bracket``: Alpaca's bracket/oto classes, IB's parent and children in one OCA group,
the simulated broker's own). They close what the entry opens: the opposite side, the entry's
quantity; the broker holds them until the entry fills and cancels one when the other fills.
"""

from __future__ import annotations

from brokers.base import (
    BrokerOrder,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
    assemble,
)
from gateway.models import OrderLeg
from gateway.risk.protective import Protection

STOP_LOSS, TAKE_PROFIT = "stop_loss", "take_profit"
SUFFIX = {STOP_LOSS: "-sl", TAKE_PROFIT: "-tp"}

Legs = list[tuple[OrderRequest, str]]


def leg_requests(entry: OrderRequest, protection: Protection) -> Legs:
    """The legs of ``entry`` (none without protection), each with its role."""
    exit_side = Side.SELL if entry.side is Side.BUY else Side.BUY
    # The exits protect a position, which outlives the entry's day: they rest until it closes
    # (a day stop would leave every overnight position unprotected).
    tif = TimeInForce.GTC
    legs: Legs = []
    for role, order_type, price in (
        (STOP_LOSS, OrderType.STOP, protection.stop_loss),
        (TAKE_PROFIT, OrderType.LIMIT, protection.take_profit),
    ):
        if price is None:
            continue
        request = assemble(
            OrderRequest,
            {
                "client_order_id": entry.client_order_id + SUFFIX[role],
                "symbol": entry.symbol,
                "side": exit_side,
                "quantity": entry.quantity,
                "order_type": order_type,
                "limit_price": price if order_type is OrderType.LIMIT else None,
                "time_in_force": tif,
                "stop_price": price if order_type is OrderType.STOP else None,
            },
        )
        legs.append((request, role))
    return legs


def roles(legs: Legs) -> dict[str, str]:
    return {request.client_order_id: role for request, role in legs}


def leg_of(legs: Legs, role: str) -> OrderRequest | None:
    return next((request for request, r in legs if r == role), None)


def leg_views(legs: Legs, placed: list[BrokerOrder]) -> list[OrderLeg]:
    """``Decision.order.legs``: each leg at the state the broker gave (its request's terms
    with status ``pending_submit`` when the broker's answer did not name it)."""
    by_id = {order.client_order_id: order for order in placed}
    views = []
    for request, role in legs:
        order = by_id.get(request.client_order_id)
        views.append(
            OrderLeg(
                client_order_id=request.client_order_id,
                role=role,  # type: ignore[arg-type]
                order_type=request.order_type,
                stop_price=order.stop_price if order else request.stop_price,
                limit_price=order.limit_price if order else request.limit_price,
                status=order.status.value if order else "pending_submit",
            )
        )
    return views
