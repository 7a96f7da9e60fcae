"""The gates before pricing: shutting down, halted, a suspended strategy, the order rate.

Each answers a refusal or None; the first that refuses decides (a halt is counted as a
blocked signal)."""

from __future__ import annotations

from gateway.models import DecisionKind, Reason, ReasonCode, Signal
from gateway.pipeline.ratelimit import TokenBucket
from gateway.safety.failures import FailureTracker
from gateway.safety.halt import HaltManager

Refusal = tuple[DecisionKind, list[Reason]]


class Gates:
    def __init__(self, *, halt: HaltManager, failures: FailureTracker, rate: TokenBucket):
        self._halt = halt
        self._failures = failures
        self._rate = rate

    def check(self, signal: Signal, *, shutting_down: bool) -> Refusal | None:
        if shutting_down:
            reason = Reason(code=ReasonCode.SHUTTING_DOWN, message="the gateway is shutting down")
            return DecisionKind.BLOCKED, [reason]
        current = self._halt.current  # the halt in force; None while trading
        if current is not None:
            self._halt.record_blocked(signal.signal_id)
            what = f"{current.trigger.value}: {current.reason}"
            reason = Reason(code=ReasonCode.HALTED, message=f"trading is halted ({what})")
            return DecisionKind.BLOCKED, [reason]
        streak = self._failures.consecutive_for(signal.strategy)
        if streak >= self._failures.threshold:
            reason = Reason(
                code=ReasonCode.STRATEGY_SUSPENDED,
                message=f"strategy {signal.strategy} has {streak} consecutive failures; "
                "a reported success or an admin reset clears it",
            )
            return DecisionKind.BLOCKED, [reason]
        if not self._rate.try_take():
            reason = Reason(code=ReasonCode.RATE_LIMITED, message="max_orders_per_second reached")
            return DecisionKind.REJECTED, [reason]
        return None
