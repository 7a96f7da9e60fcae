"""Restart recovery of signals whose intent was journaled but whose broker answer never came
(a crash between the two): the broker is asked for the client_order_id, never sent it again."""

from __future__ import annotations

import logging
from decimal import Decimal

from brokers.base import Broker
from gateway.models import Decision, DecisionKind, DecisionRisk, Reason, ReasonCode, Signal
from gateway.pipeline.decisions import accepted, order_summary
from gateway.risk.book import Book
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.recovery")

ZERO = Decimal(0)


async def resolve_undecided(
    journal: Journal, broker: Broker, book: Book
) -> dict[str, tuple[str, str]]:
    """Decide every undecided signal from the broker's answer; returns signal_id -> (body hash,
    decision JSON) for the idempotency record."""
    decided: dict[str, tuple[str, str]] = {}
    for signal_id, digest, body, coid in journal.undecided():
        signal = Signal.model_validate_json(body)
        order = await broker.get_order(coid) if coid else None
        if order is None:
            reason = Reason(
                code=ReasonCode.BROKER_UNAVAILABLE,
                message="no broker answer before a restart, and the broker has no order "
                f"{coid}: it was never placed",
            )
            if coid:
                journal.record_order_rejected(coid, reason.message)
            decision = Decision(
                signal_id=signal_id, decision=DecisionKind.REJECTED, reasons=[reason]
            )
        else:
            # Positions already hold its fills (they came from the broker): only track it.
            price = order.avg_fill_price or order.limit_price or ZERO
            book.track(order, price)
            decision = accepted(signal_id, order_summary(order, price, None), DecisionRisk())
        outcome = decision.decision.value
        decision_json = decision.model_dump_json()
        journal.record_decision(signal_id, decision_json, outcome, order)
        journal.record_event(
            "recovered_intent",
            {"signal_id": signal_id, "client_order_id": coid, "outcome": outcome},
        )
        decided[signal_id] = (digest, decision_json)
        log.warning(
            "resolved an undecided signal after restart: %s",
            outcome,
            extra={
                "signal_id": signal_id,
                "client_order_id": coid,
                "strategy": signal.strategy,
                "symbol": signal.symbol,
            },
        )
    return decided
