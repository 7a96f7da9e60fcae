"""Building decisions: the accepted one from a broker's order, and the order summary in it.

The broker's order is a validated BrokerOrder and the price an exact Decimal, so both are
assembled without a second validation (the hot path builds one per signal).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from brokers.base import BrokerOrder, OrderRequest, assemble
from gateway.models import Decision, DecisionKind, DecisionOrder, DecisionRisk, OrderLeg, Reason


def order_summary(
    order: BrokerOrder,
    price: Decimal,
    quote_time: datetime | None,
    *,
    conservative: bool = False,
    legs: list[OrderLeg] | None = None,
) -> DecisionOrder:
    return assemble(
        DecisionOrder,
        {
            "client_order_id": order.client_order_id,
            "broker_order_id": order.broker_order_id,
            "status": order.status.value,
            "symbol": order.symbol,
            "side": order.side,
            "quantity": order.quantity,
            "price": price,
            "notional": order.quantity * price,
            "quote_time": quote_time,
            "order_type": order.order_type,
            "priced_conservatively": conservative,
            "avg_fill_price": order.avg_fill_price,
            "legs": legs or [],
        },
    )


def accepted(
    signal_id: str,
    order: DecisionOrder,
    risk: DecisionRisk,
    reasons: list[Reason] | None = None,
) -> Decision:
    return assemble(
        Decision,
        {
            "signal_id": signal_id,
            "decision": DecisionKind.ACCEPTED,
            "reasons": reasons or [],
            "order": order,
            "risk": risk,
        },
    )


def intent_summary(
    request: OrderRequest,
    price: Decimal,
    quote_time: datetime | None = None,
    *,
    conservative: bool = False,
    legs: list[OrderLeg] | None = None,
) -> DecisionOrder:
    """The decision's order for an intent the broker never confirmed (its fate is unknown)."""
    return DecisionOrder(
        client_order_id=request.client_order_id,
        broker_order_id=None,
        status="pending_submit",
        symbol=request.symbol,
        side=request.side,
        quantity=request.quantity,
        price=price,
        notional=request.quantity * price,
        quote_time=quote_time,
        order_type=request.order_type,
        priced_conservatively=conservative,
        legs=legs or [],
    )
