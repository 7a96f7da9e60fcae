"""The gates before pricing, in their order: shutting down, halted, a suspended strategy, the
order rate. The first that refuses decides, and a refused signal takes no order-rate token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.models import DecisionKind, ReasonCode, Signal
from gateway.pipeline.gates import Gates
from gateway.pipeline.ratelimit import TokenBucket
from gateway.safety.failures import FailureTracker
from gateway.safety.halt import HaltManager, HaltStateStore
from gateway.safety.halt_state import HaltTrigger


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def halt(tmp_path: Path) -> HaltManager:
    return HaltManager(HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=300)


@pytest.fixture
def failures() -> FailureTracker:
    return FailureTracker(threshold=3, clock=lambda: datetime(2026, 1, 5, 15, 0, tzinfo=UTC))


def gates(halt: HaltManager, failures: FailureTracker, rate: int = 100) -> Gates:
    return Gates(halt=halt, failures=failures, rate=TokenBucket(rate, clock=Clock()))


def signal(signal_id: str = "s-1", strategy: str = "momentum") -> Signal:
    return Signal(signal_id=signal_id, strategy=strategy, symbol="AAPL", side="buy", quantity=1)


def fail(failures: FailureTracker, strategy: str, times: int) -> None:
    for _ in range(times):
        failures.record_failure(strategy, "AAPL", "no data", "data_error")


def test_an_open_gateway_lets_a_signal_through(halt: HaltManager, failures: FailureTracker) -> None:
    assert gates(halt, failures).check(signal(), shutting_down=False) is None


def test_shutting_down_blocks_first_and_is_not_counted_as_blocked_by_the_halt(
    halt: HaltManager, failures: FailureTracker
) -> None:
    halt.halt("desk", HaltTrigger.MANUAL, by="test")
    refusal = gates(halt, failures).check(signal(), shutting_down=True)
    assert refusal is not None
    kind, [reason] = refusal
    assert (kind, reason.code) == (DecisionKind.BLOCKED, ReasonCode.SHUTTING_DOWN)
    summary = halt.summary()
    assert summary is not None and summary["blocked"] == 0


def test_a_halt_blocks_names_its_trigger_and_reason_and_counts_the_signal(
    halt: HaltManager, failures: FailureTracker
) -> None:
    halt.halt("risk desk", HaltTrigger.MANUAL, by="test")
    fail(failures, "momentum", 3)  # suspended too: the halt answers first
    refusal = gates(halt, failures).check(signal(), shutting_down=False)
    assert refusal is not None
    kind, [reason] = refusal
    assert (kind, reason.code) == (DecisionKind.BLOCKED, ReasonCode.HALTED)
    assert "manual: risk desk" in reason.message
    summary = halt.summary()
    assert summary is not None and summary["blocked"] == 1


def test_a_strategy_is_suspended_at_exactly_its_failure_threshold(
    halt: HaltManager, failures: FailureTracker
) -> None:
    halt_free = gates(halt, failures)
    fail(failures, "momentum", 2)
    assert halt_free.check(signal("s-1"), shutting_down=False) is None
    fail(failures, "momentum", 1)
    refusal = halt_free.check(signal("s-2"), shutting_down=False)
    assert refusal is not None
    kind, [reason] = refusal
    assert (kind, reason.code) == (DecisionKind.BLOCKED, ReasonCode.STRATEGY_SUSPENDED)
    assert "momentum" in reason.message and "3 consecutive" in reason.message
    # Only that strategy: another one still trades.
    assert halt_free.check(signal("s-3", strategy="meanrev"), shutting_down=False) is None


def test_beyond_the_order_rate_a_signal_is_rejected_rate_limited(
    halt: HaltManager, failures: FailureTracker
) -> None:
    limited = gates(halt, failures, rate=2)
    assert limited.check(signal("s-1"), shutting_down=False) is None
    assert limited.check(signal("s-2"), shutting_down=False) is None
    refusal = limited.check(signal("s-3"), shutting_down=False)
    assert refusal is not None
    kind, [reason] = refusal
    assert (kind, reason.code) == (DecisionKind.REJECTED, ReasonCode.RATE_LIMITED)


def test_a_signal_an_earlier_gate_refused_takes_no_order_rate_token(
    halt: HaltManager, failures: FailureTracker
) -> None:
    limited = gates(halt, failures, rate=1)
    fail(failures, "momentum", 3)
    assert limited.check(signal("s-1"), shutting_down=False) is not None  # suspended
    assert limited.check(signal("s-2"), shutting_down=True) is not None  # shutting down
    assert limited.check(signal("s-3", strategy="meanrev"), shutting_down=False) is None
