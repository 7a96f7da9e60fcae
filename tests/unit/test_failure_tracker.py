"""FailureTracker and SignalGenerationFailure, including the seed's 12 failure-tracker scenarios."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.safety.failures import FailureTracker, FailureType, SignalGenerationFailure
from gateway.safety.halt import HaltManager, HaltStateStore, HaltTrigger

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ThresholdCalls:
    """Records on_threshold calls, as the engine's halt callback would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, SignalGenerationFailure]] = []

    def __call__(self, reason: str, failure: SignalGenerationFailure) -> None:
        self.calls.append((reason, failure))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def calls() -> ThresholdCalls:
    return ThresholdCalls()


@pytest.fixture
def tracker(clock: FakeClock, calls: ThresholdCalls) -> FailureTracker:
    return FailureTracker(threshold=3, on_threshold=calls, clock=clock)


# -- the seed's failure-tracker scenarios -------------------------------------------------------


def test_1_initialization(tracker: FailureTracker) -> None:
    """Seed failure scenario 1: Initialization."""
    assert tracker.consecutive == 0
    assert tracker.threshold == 3
    assert tracker.status()["total"] == 0
    assert tracker.snapshot()["history"] == []
    assert tracker.consecutive_for("momentum") == 0
    assert tracker.status() == {
        "consecutive": 0,
        "threshold": 3,
        "consecutive_by_strategy": {},
        "by_strategy": {},
        "by_symbol": {},
        "by_type": {},
        "total": 0,
        "recent": [],
    }


def test_2_single_failure(tracker: FailureTracker, calls: ThresholdCalls) -> None:
    """Seed failure scenario 2: Single Failure - 1 consecutive."""
    failure = tracker.record_failure("momentum", "AAPL", ValueError("no bars for AAPL"))
    assert failure.consecutive == 1
    assert failure.error == "no bars for AAPL"
    assert failure.error_type == "ValueError"
    assert failure.failure_type is FailureType.STRATEGY_ERROR
    assert tracker.consecutive == 1
    assert tracker.status()["total"] == 1
    assert calls.calls == []


def test_3_multiple_failures_below_threshold(
    tracker: FailureTracker, calls: ThresholdCalls
) -> None:
    """Seed failure scenario 3: Multiple Below Threshold - 2 consecutive, no halt."""
    tracker.record_failure("momentum", "AAPL", "boom")
    tracker.record_failure("momentum", "AAPL", "boom")
    assert tracker.consecutive == 2
    assert calls.calls == []


def test_4_halt_at_threshold(tracker: FailureTracker, calls: ThresholdCalls) -> None:
    """Seed failure scenario 4: Halt at Threshold - 3 consecutive calls on_threshold once."""
    tracker.record_failure("momentum", "AAPL", RuntimeError("first"))
    tracker.record_failure("momentum", "MSFT", RuntimeError("second"))
    third = tracker.record_failure("momentum", "AAPL", RuntimeError("third"))
    assert len(calls.calls) == 1
    reason, failure = calls.calls[0]
    assert failure == third
    assert reason == "3 consecutive failures of strategy momentum: RuntimeError: third"
    # Exactly once per streak: further failures of the same streak do not call again.
    tracker.record_failure("momentum", "AAPL", "fourth")
    tracker.record_failure("momentum", "AAPL", "fifth")
    assert len(calls.calls) == 1
    assert tracker.consecutive == 5


def test_4b_threshold_halts_the_gateway(tmp_path: Path, clock: FakeClock) -> None:
    """The engine's wiring: on_threshold halts with trigger technical_failure."""
    halts = HaltManager(HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=300)
    halts.restore()

    def halt(reason: str, failure: SignalGenerationFailure) -> None:
        halts.halt(reason, HaltTrigger.TECHNICAL_FAILURE, by="failures")

    tracker = FailureTracker(threshold=3, on_threshold=halt, clock=clock)
    for _ in range(3):
        tracker.record_failure("momentum", "AAPL", TimeoutError("feed"), FailureType.TIMEOUT)
    assert halts.current is not None
    assert halts.current.trigger is HaltTrigger.TECHNICAL_FAILURE
    assert "3 consecutive failures of strategy momentum" in halts.current.reason


def test_5_success_resets(tracker: FailureTracker, calls: ThresholdCalls) -> None:
    """Seed failure scenario 5: Success Resets - the counter goes back to 0."""
    tracker.record_failure("momentum", "AAPL", "a")
    tracker.record_failure("momentum", "AAPL", "b")
    tracker.record_success("momentum", "AAPL")
    assert tracker.consecutive == 0
    assert tracker.consecutive_for("momentum") == 0
    tracker.record_failure("momentum", "AAPL", "c")
    tracker.record_failure("momentum", "AAPL", "d")
    assert calls.calls == []  # 2 + 2 with a success between is not a streak of 3
    assert tracker.status()["total"] == 4


def test_5b_new_streak_after_success_fires_again(
    tracker: FailureTracker, calls: ThresholdCalls
) -> None:
    for _ in range(3):
        tracker.record_failure("momentum", None, "x")
    tracker.record_success("momentum")
    for _ in range(3):
        tracker.record_failure("momentum", None, "y")
    assert len(calls.calls) == 2


def test_6_signal_generation_failure_class(clock: FakeClock) -> None:
    """Seed failure scenario 6: Failure Class - the object and its dict."""
    failure = SignalGenerationFailure(
        strategy="momentum",
        symbol="AAPL",
        error="division by zero",
        error_type="ZeroDivisionError",
        failure_type=FailureType.DATA_ERROR,
        at=START,
        consecutive=2,
    )
    as_dict = failure.to_dict()
    assert as_dict == {
        "strategy": "momentum",
        "symbol": "AAPL",
        "error": "division by zero",
        "error_type": "ZeroDivisionError",
        "failure_type": "data_error",
        "at": "2026-11-25T12:00:00+00:00",
        "consecutive": 2,
    }
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert SignalGenerationFailure.from_dict(as_dict) == failure
    with pytest.raises(AttributeError):
        failure.consecutive = 3  # type: ignore[misc]


def test_6b_failure_from_tracker_fields(tracker: FailureTracker, clock: FakeClock) -> None:
    clock.advance(42)
    failure = tracker.record_failure(
        "meanrev", "MSFT", "broker said 503", "broker_error", error_type="BrokerUnavailable"
    )
    assert failure.strategy == "meanrev"
    assert failure.symbol == "MSFT"
    assert failure.failure_type is FailureType.BROKER_ERROR
    assert failure.error_type == "BrokerUnavailable"
    assert failure.at == START + timedelta(seconds=42)
    message_only = tracker.record_failure("meanrev", None, "bad input", "validation_error")
    assert message_only.error_type == "validation_error"
    empty_message = tracker.record_failure("meanrev", None, KeyError())
    assert empty_message.error == "KeyError()"


def test_7_strategy_specific_tracking(tracker: FailureTracker, calls: ThresholdCalls) -> None:
    """Seed failure scenario 7: Strategy Tracking - counts and streaks per strategy."""
    tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("meanrev", "AAPL", "x")
    tracker.record_failure("meanrev", "AAPL", "x")
    # Interleaved failures of two strategies are two streaks of 2, not one of 4.
    assert calls.calls == []
    assert tracker.consecutive_for("momentum") == 2
    assert tracker.consecutive_for("meanrev") == 2
    assert tracker.consecutive == 2
    tracker.record_success("momentum")
    tracker.record_failure("meanrev", "MSFT", "x")
    assert [c[1].strategy for c in calls.calls] == ["meanrev"]
    status = tracker.status()
    assert status["by_strategy"] == {"momentum": 2, "meanrev": 3}
    assert status["consecutive_by_strategy"] == {"momentum": 0, "meanrev": 3}
    assert status["consecutive"] == 3


def test_8_symbol_specific_tracking(tracker: FailureTracker) -> None:
    """Seed failure scenario 8: Symbol Tracking - totals per symbol; no symbol is not counted."""
    tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("meanrev", "AAPL", "x")
    tracker.record_failure("momentum", "MSFT", "x")
    tracker.record_failure("momentum", None, "x")
    assert tracker.status()["by_symbol"] == {"AAPL": 2, "MSFT": 1}
    assert tracker.status()["total"] == 4


def test_9_failure_history_keeps_last_100(tracker: FailureTracker, clock: FakeClock) -> None:
    """Seed failure scenario 9: Failure History - record 150, the last 100 are kept."""
    for i in range(150):
        clock.advance(1)
        tracker.record_failure(f"s{i % 7}", "AAPL", f"error {i}")
        if i % 2:
            tracker.record_success(f"s{i % 7}")
    history = tracker.snapshot()["history"]
    assert len(history) == 100
    assert [f["error"] for f in history] == [f"error {i}" for i in range(50, 150)]
    assert tracker.status()["total"] == 150  # totals are not capped with the history


def test_10_status_report(tracker: FailureTracker) -> None:
    """Seed failure scenario 10: Status Report - the dict the status endpoint serves."""
    for i in range(12):
        tracker.record_failure("momentum", "AAPL", f"e{i}", FailureType.DATA_ERROR)
        tracker.record_success("momentum")
    tracker.record_failure("meanrev", "MSFT", TimeoutError("slow"), FailureType.TIMEOUT)
    status = tracker.status()
    assert status["consecutive"] == 1
    assert status["threshold"] == 3
    assert status["consecutive_by_strategy"] == {"momentum": 0, "meanrev": 1}
    assert status["by_strategy"] == {"momentum": 12, "meanrev": 1}
    assert status["by_symbol"] == {"AAPL": 12, "MSFT": 1}
    assert status["by_type"] == {"data_error": 12, "timeout": 1}
    assert status["total"] == 13
    assert len(status["recent"]) == 10
    assert status["recent"][-1]["error"] == "slow"
    assert status["recent"][0]["error"] == "e3"
    assert json.loads(json.dumps(status)) == status


def test_11_manual_reset(tracker: FailureTracker, calls: ThresholdCalls) -> None:
    """Seed failure scenario 11: Manual Reset - streaks end; totals and history stay."""
    for _ in range(3):
        tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("meanrev", "AAPL", "x")
    assert len(calls.calls) == 1
    tracker.reset(by="api:admin")
    assert tracker.consecutive == 0
    assert tracker.consecutive_for("meanrev") == 0
    assert tracker.status()["total"] == 4
    assert len(tracker.snapshot()["history"]) == 4
    # After a reset a new streak can fire again.
    for _ in range(3):
        tracker.record_failure("momentum", "AAPL", "y")
    assert len(calls.calls) == 2
    with pytest.raises(ValueError, match="by"):
        tracker.reset(by="")


def test_12_trackers_are_independent_instances(clock: FakeClock) -> None:
    """Seed failure scenario 12 (Singleton Pattern), turned right: no shared global state.

    Each gateway builds its own tracker and passes it in; uniqueness comes from injection, so
    two trackers never see each other's failures or callbacks.
    """
    first_calls, second_calls = ThresholdCalls(), ThresholdCalls()
    first = FailureTracker(threshold=2, on_threshold=first_calls, clock=clock)
    second = FailureTracker(threshold=2, on_threshold=second_calls, clock=clock)
    assert first is not second

    first.record_failure("momentum", "AAPL", "x")
    first.record_failure("momentum", "AAPL", "x")
    assert first.consecutive == 2
    assert second.consecutive == 0
    assert second.status()["by_strategy"] == {}
    assert second.snapshot()["history"] == []
    assert len(first_calls.calls) == 1
    assert second_calls.calls == []

    second.record_failure("momentum", "AAPL", "y")
    second.reset(by="cli")
    assert first.consecutive == 2  # a reset of one does not touch the other
    assert first.status()["total"] == 2

    import gateway.safety.failures as module

    # Nothing in the module holds a tracker: there is no global to share.
    assert not [v for v in vars(module).values() if isinstance(v, FailureTracker)]


# -- snapshot / restore -------------------------------------------------------------------------


def test_snapshot_restore_round_trip(tracker: FailureTracker, clock: FakeClock) -> None:
    tracker.record_failure("momentum", "AAPL", ValueError("a"), FailureType.DATA_ERROR)
    tracker.record_failure("momentum", "MSFT", "b", FailureType.BROKER_ERROR)
    tracker.record_failure("meanrev", None, "c")
    tracker.record_success("meanrev")
    tracker.reset(by="cli")
    tracker.record_failure("meanrev", "AAPL", "d")

    snapshot = json.loads(json.dumps(tracker.snapshot()))  # survives JSON
    restored = FailureTracker.restore(snapshot, threshold=3, clock=clock)
    assert restored.status() == tracker.status()
    assert restored.snapshot()["history"] == tracker.snapshot()["history"]
    assert restored.snapshot() == tracker.snapshot()


def test_restored_tracker_does_not_refire_a_fired_streak(
    tracker: FailureTracker, calls: ThresholdCalls, clock: FakeClock
) -> None:
    for _ in range(3):
        tracker.record_failure("momentum", "AAPL", "x")
    assert len(calls.calls) == 1

    after_restart = ThresholdCalls()
    restored = FailureTracker.restore(
        tracker.snapshot(), threshold=3, on_threshold=after_restart, clock=clock
    )
    assert restored.consecutive_for("momentum") == 3
    restored.record_failure("momentum", "AAPL", "x")
    assert after_restart.calls == []
    # The streak continues across the restart; a success ends it, a new one fires again.
    restored.record_success("momentum")
    for _ in range(3):
        restored.record_failure("momentum", "AAPL", "x")
    assert len(after_restart.calls) == 1


def test_restored_unfired_streak_fires_on_next_failure(clock: FakeClock) -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("momentum", "AAPL", "x")
    calls = ThresholdCalls()
    restored = FailureTracker.restore(
        tracker.snapshot(), threshold=3, on_threshold=calls, clock=clock
    )
    restored.record_failure("momentum", "AAPL", "x")
    assert len(calls.calls) == 1
    assert calls.calls[0][1].consecutive == 3


def test_restore_trims_history_to_new_size(tracker: FailureTracker, clock: FakeClock) -> None:
    for i in range(20):
        tracker.record_failure("momentum", "AAPL", f"e{i}")
    restored = FailureTracker.restore(tracker.snapshot(), threshold=3, history_size=5, clock=clock)
    assert [f["error"] for f in restored.snapshot()["history"]] == [f"e{i}" for i in range(15, 20)]
    assert restored.status()["total"] == 20


def _with(**changes: object) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda snapshot: {**snapshot, **changes}


def _bad_history_time(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {**snapshot, "history": [{**snapshot["history"][0], "at": "yesterday"}]}


@pytest.mark.parametrize(
    "damage",
    [
        _with(version=2),
        _with(consecutive={"momentum": -1}),
        _with(consecutive=["momentum"]),
        _with(by_type={"meteor": 1}),
        _with(total="3"),
        _with(fired="momentum"),
        _with(history=[{"strategy": "m"}]),
        _bad_history_time,
    ],
)
def test_restore_refuses_a_malformed_snapshot(
    tracker: FailureTracker, damage: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    tracker.record_failure("momentum", "AAPL", "x")
    with pytest.raises(ValueError):
        FailureTracker.restore(damage(tracker.snapshot()), threshold=3, clock=FakeClock())


def test_restore_refuses_a_missing_key(tracker: FailureTracker) -> None:
    snapshot = tracker.snapshot()
    del snapshot["fired"]
    with pytest.raises(ValueError, match="malformed"):
        FailureTracker.restore(snapshot, threshold=3, clock=FakeClock())


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["", "   "])
def test_empty_strategy_refused(tracker: FailureTracker, strategy: str) -> None:
    with pytest.raises(ValueError, match="strategy"):
        tracker.record_failure(strategy, "AAPL", "x")
    with pytest.raises(ValueError, match="strategy"):
        tracker.record_success(strategy)
    assert tracker.status()["total"] == 0


def test_unknown_failure_type_refused(tracker: FailureTracker) -> None:
    with pytest.raises(ValueError, match="failure_type"):
        tracker.record_failure("momentum", "AAPL", "x", "meteor")
    assert tracker.status()["total"] == 0
    assert tracker.consecutive == 0


def test_empty_symbol_refused(tracker: FailureTracker) -> None:
    with pytest.raises(ValueError, match="symbol"):
        tracker.record_failure("momentum", "", "x")


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"history_size": 0}, {"threshold": True}])
def test_bad_settings_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        FailureTracker(**{"threshold": 3, **kwargs}, clock=FakeClock())  # type: ignore[arg-type]


def test_callback_that_raises_is_retried_on_the_next_failure(clock: FakeClock) -> None:
    """A halt that did not happen must not be forgotten: the failure stays, the call is retried."""
    attempts: list[str] = []

    def flaky(reason: str, failure: SignalGenerationFailure) -> None:
        attempts.append(reason)
        if len(attempts) == 1:
            raise OSError("disk full")

    tracker = FailureTracker(threshold=2, on_threshold=flaky, clock=clock)
    tracker.record_failure("momentum", "AAPL", "x")
    with pytest.raises(OSError):
        tracker.record_failure("momentum", "AAPL", "x")
    assert tracker.consecutive == 2
    assert tracker.status()["total"] == 2
    tracker.record_failure("momentum", "AAPL", "x")
    assert len(attempts) == 2
    tracker.record_failure("momentum", "AAPL", "x")
    assert len(attempts) == 2
