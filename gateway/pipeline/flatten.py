"""The kill switch closing a position: it bypasses the halt and the checks, not the journal.

Its intent is committed before the broker sees it, like any order's (a journal that cannot
write refuses it: the flatten is reported failed, nothing is sent), and its decision is kept
with it, so a restart finds it decided, not undecided.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from brokers.base import Broker, BrokerOrder, OrderRequest
from gateway.models import DecisionRisk, Signal
from gateway.pipeline.decisions import accepted, order_summary
from gateway.pipeline.ids import body_hash, exact_body
from gateway.store.journal import Journal

STRATEGY = "kill_switch"


async def send_flatten(
    request: OrderRequest,
    *,
    journal: Journal,
    broker: Broker,
    apply: Callable[[BrokerOrder], None],
) -> BrokerOrder:
    signal = Signal(
        signal_id=request.client_order_id,
        strategy=STRATEGY,
        symbol=request.symbol,
        side=request.side,
        quantity=request.quantity,
    )
    journal.commit_now(
        journal.record_intent(
            signal_id=signal.signal_id,
            body_hash=body_hash(signal),
            body=exact_body(signal),
            strategy=STRATEGY,
            symbol=signal.symbol,
            order=request,
            valued_at=None,
        )
    )
    order = await broker.submit(request)
    apply(order)
    summary = order_summary(order, order.avg_fill_price or Decimal(0), None)
    decision = accepted(signal.signal_id, summary, DecisionRisk()).model_dump_json()
    journal.record_decision(signal.signal_id, decision, "accepted", order)
    return order
