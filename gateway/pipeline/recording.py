"""Recording a decision: its journal row (a ticket to wait on), its metrics, its log line.

Every decision is logged at INFO with signal_id, strategy, symbol and client_order_id."""

from __future__ import annotations

import logging
import time

from gateway.models import Decision, DecisionKind, DecisionRisk, Reason, Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.idempotency import Decided, decision_after_intent
from gateway.pipeline.ids import client_order_id
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.engine")

Refusal = tuple[DecisionKind, list[Reason]]


class DecisionRecorder:
    def __init__(self, journal: Journal, metrics: GatewayMetrics):
        self._journal = journal
        self._metrics = metrics

    def refused(
        self,
        signal: Signal,
        digest: str,
        body: str,
        refusal: Refusal,
        started: float,
        risk: DecisionRisk | None = None,
        *,
        coid: str | None = None,
    ) -> Decided:
        """A refusal before any intent: one journal row, the signal and its decision
        (``coid``: the order a replace was for; a signal's own order otherwise)."""
        kind, reasons = refusal
        decision = Decision(
            signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=risk or DecisionRisk()
        )
        decision_json = decision.model_dump_json()
        ticket = self._journal.record_refusal(
            signal_id=signal.signal_id,
            body_hash=digest,
            body=body,
            strategy=signal.strategy,
            symbol=signal.symbol,
            decision_json=decision_json,
            outcome=kind.value,
            defer=True,
        )
        self.observe(signal, kind, reasons, started, coid=coid)
        return Decided(decision_json, ticket)

    def refused_after_intent(
        self, signal: Signal, refusal: Refusal, started: float, risk: DecisionRisk
    ) -> Decided:
        """A refusal after the intent was journaled: the decision completes that row."""
        kind, reasons = refusal
        decision = Decision(signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=risk)
        decision_json = decision.model_dump_json()
        decided = decision_after_intent(
            decision_json,
            lambda: self._journal.record_decision(
                signal.signal_id, decision_json, kind.value, defer=True, strategy=signal.strategy
            ),
        )
        self.observe(signal, kind, reasons, started)
        return decided

    def observe(
        self,
        signal: Signal,
        kind: DecisionKind,
        reasons: list[Reason],
        started: float,
        *,
        coid: str | None = None,
    ) -> None:
        self._metrics.observe_decision(kind.value, [r.code.value for r in reasons])
        if not log.isEnabledFor(logging.INFO):
            return  # nothing below is needed unless the line is written
        log.info(
            "signal %s %s",
            kind.value,
            ",".join(r.code.value for r in reasons) or "ok",
            extra={
                "signal_id": signal.signal_id,
                "strategy": signal.strategy,
                "symbol": signal.symbol,
                "client_order_id": coid or client_order_id(signal.signal_id),
                "decision": kind.value,
                "elapsed_us": round((time.perf_counter() - started) * 1e6),
            },
        )
