"""Restart recovery of a replace whose intent was journaled but whose decision never was (a
crash while the broker had it): the broker's order says whether it landed.

- the broker holds the order with every value the replace asked for: accepted, and the
  order's row takes them (the book already holds the broker's state, from the restart);
- otherwise (the order unchanged, gone, or not to be looked up): rejected, saying why; the order
  is held as the broker has it, and reconciliation settles what a look-up could not.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

from brokers.base import Broker
from brokers.errors import BrokerError
from gateway.models import Decision, DecisionKind, DecisionRisk, Reason, ReasonCode
from gateway.pipeline.decisions import accepted, order_summary
from gateway.store.amends import REPLACE_KEY
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.recovery")

CHANGED = ("quantity", "limit_price", "stop_price")


async def decide_replace(signal_id: str, body: str, journal: Journal, broker: Broker) -> str:
    """Decide and journal the replace (committed); returns the decision's JSON."""
    asked = json.loads(body)
    coid = str(asked[REPLACE_KEY])
    try:
        order = await broker.get_order(coid)
    except BrokerError as exc:
        order, why = None, f"the order could not be looked up ({exc})"
    else:
        why = "the broker has no such order" if order is None else "the broker holds it unchanged"
    landed = order is not None and all(
        getattr(order, name) == Decimal(asked[name]) for name in CHANGED if name in asked
    )
    if order is not None and landed:
        price = order.limit_price or order.stop_price or Decimal(0)
        decision = accepted(signal_id, order_summary(order, price, None), DecisionRisk())
    else:
        reason = Reason(
            code=ReasonCode.BROKER_UNAVAILABLE,
            message=f"no broker answer before a restart, and {why}: not replaced",
        )
        decision = Decision(signal_id=signal_id, decision=DecisionKind.REJECTED, reasons=[reason])
    decision_json = decision.model_dump_json()
    outcome = decision.decision.value
    journal.commit_now(
        journal.record_replace_decision(
            signal_id,
            decision_json,
            outcome,
            order if landed else None,
            detail="replace recovered after a restart",
        )
    )
    log.warning(
        "resolved an undecided replace after restart: %s",
        outcome,
        extra={"signal_id": signal_id, "client_order_id": coid},
    )
    return decision_json
