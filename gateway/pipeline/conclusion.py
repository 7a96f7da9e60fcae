"""The accepted decision: an order the broker placed, or one whose fate is unknown.

A placed order enters the book at the price it was valued at and its state is journaled with
the decision; a strategy's streak of failures ends with it. An order of unknown fate keeps its
reservation and its journal row stays ``pending_submit``; its decision says so
(``broker_answer_unknown``), and the order's real fate follows once it is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from brokers.base import BrokerOrder, OrderRequest
from gateway.config import GatewayConfig
from gateway.models import Reason, ReasonCode, Signal
from gateway.pipeline.admission import Admission
from gateway.pipeline.brackets import Legs, leg_views
from gateway.pipeline.decisions import accepted, intent_summary, order_summary
from gateway.pipeline.idempotency import Decided, decision_after_intent
from gateway.pipeline.sender import SendResult
from gateway.safety.failures import FailureTracker
from gateway.store.journal import Journal


class Conclusion:
    def __init__(
        self,
        *,
        journal: Journal,
        failures: FailureTracker,
        config: GatewayConfig,
        apply_order: Callable[[BrokerOrder, Decimal], None],
    ):
        self._journal = journal
        self._failures = failures
        self._multiplier = config.gateway.quotes.conservative_multiplier
        self._apply_order = apply_order

    def accepted(
        self,
        signal: Signal,
        request: OrderRequest,
        admission: Admission,
        result: SendResult,
        legs: Legs | None = None,
    ) -> Decided:
        """The decision, written (or kept to write, if it cannot be)."""
        price = admission.price
        notes = []
        if price.conservative:
            notes.append(
                Reason(
                    code=ReasonCode.QUOTE_CONSERVATIVE,
                    message=f"no usable quote: priced at the last known price x {self._multiplier}",
                )
            )
        if result.code is not None:
            notes.append(Reason(code=result.code, message=result.message))
        order = result.order
        if order is None:  # its fate is unknown: journaled as the intent, settled later
            quote_ts = price.quote.ts if price.quote else None
            summary = intent_summary(
                request,
                price.value,
                quote_ts,
                conservative=price.conservative,
                legs=leg_views(legs or [], []),
            )
            decision = accepted(signal.signal_id, summary, admission.risk, notes)
            decision_json = decision.model_dump_json()
            return decision_after_intent(
                decision_json,
                lambda: self._journal.record_decision(
                    signal.signal_id,
                    decision_json,
                    "accepted",
                    defer=True,
                    strategy=signal.strategy,
                ),
            )
        self._apply_order(order, price.value)
        if self._failures.consecutive_for(signal.strategy):
            self._failures.record_success(signal.strategy, signal.symbol)
            self._journal.put("failures", self._failures.snapshot())
        quote = price.quote
        summary = order_summary(
            order,
            price.value,
            quote.ts if quote else None,
            conservative=price.conservative,
            legs=leg_views(legs or [], list(result.legs)),
        )
        decision_json = accepted(signal.signal_id, summary, admission.risk, notes).model_dump_json()
        return decision_after_intent(
            decision_json,
            lambda: self._journal.record_decision(
                signal.signal_id,
                decision_json,
                "accepted",
                order,
                defer=True,
                strategy=signal.strategy,
            ),
        )
