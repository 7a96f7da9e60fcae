"""FailureTracker across a restart (snapshot in the journal, restore at start) and its edges.

A snapshot that cannot be restored halts the gateway with the ValueError's text as the halt
reason (state_unreadable), so the text must name the field that is wrong.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.safety.failures import FailureTracker, SignalGenerationFailure

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def a_snapshot() -> dict[str, Any]:
    tracker = FailureTracker(threshold=3, clock=Clock())
    tracker.record_failure("momentum", "AAPL", "no bars")
    return tracker.snapshot()


def refused(snapshot: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as raised:
        FailureTracker.restore(snapshot, threshold=3, clock=Clock())
    return str(raised.value)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("consecutive", {"momentum": -1}, "consecutive['momentum'] must be a non-negative integer"),
        (
            "consecutive",
            {"momentum": True},
            "consecutive['momentum'] must be a non-negative integer",
        ),
        ("consecutive", {"": 1}, "consecutive key must be a non-empty string"),
        ("consecutive", [], "consecutive must be an object of counts, got list"),
        ("by_strategy", {"momentum": "1"}, "by_strategy['momentum'] must be"),
        ("by_symbol", {"AAPL": -2}, "by_symbol['AAPL'] must be"),
        ("by_type", {"data_error": 1.5}, "by_type['data_error'] must be"),
        ("total", -1, "total must be a non-negative integer, got -1"),
        ("total", False, "total must be a non-negative integer, got False"),
        ("fired", [""], "fired must be a non-empty string"),
        ("fired", "momentum", "expected a list, got str"),
        ("history", {}, "expected a list, got dict"),
    ],
)
def test_a_bad_snapshot_field_is_named_in_the_refusal(field: str, value: object, says: str) -> None:
    assert says in refused({**a_snapshot(), field: value})


def test_an_unknown_version_is_named_in_the_refusal() -> None:
    assert refused({**a_snapshot(), "version": 7}) == "unknown failure snapshot version 7"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("strategy", " ", "strategy must be a non-empty string"),
        ("symbol", "", "symbol must be a non-empty string"),
        ("error_type", 3, "error_type must be a non-empty string"),
        ("consecutive", -1, "consecutive must be a non-negative integer"),
        ("at", "2026-11-25T12:00:00", "failure time '2026-11-25T12:00:00' has no time zone"),
    ],
)
def test_a_bad_history_entry_is_named_in_the_refusal(field: str, value: object, says: str) -> None:
    snapshot = a_snapshot()
    entry = {**snapshot["history"][0], field: value}
    message = refused({**snapshot, "history": [entry]})
    assert message.startswith(says)


def test_a_history_entry_without_a_symbol_is_restored() -> None:
    snapshot = a_snapshot()
    snapshot["history"][0]["symbol"] = None
    restored = FailureTracker.restore(snapshot, threshold=3, clock=Clock())
    assert restored.snapshot()["history"][0]["symbol"] is None


def test_restore_runs_on_this_runs_threshold_and_clock() -> None:
    """The engine restores with the configured threshold and its own clock."""
    calls: list[SignalGenerationFailure] = []
    tracker = FailureTracker(threshold=3, clock=Clock())
    for _ in range(3):
        tracker.record_failure("momentum", "AAPL", "x")  # fires at 3 under the old setting
    tracker.record_success("momentum")
    later = Clock(START + timedelta(days=1))
    restored = FailureTracker.restore(
        tracker.snapshot(), threshold=5, on_threshold=lambda r, f: calls.append(f), clock=later
    )
    for _ in range(4):
        restored.record_failure("momentum", "AAPL", "y")
    assert calls == []  # 4 < 5
    fifth = restored.record_failure("momentum", "AAPL", "y")
    assert calls == [fifth]
    assert fifth.at == later.now
    assert restored.status()["threshold"] == 5


def test_a_restored_tracker_keeps_the_last_100_failures() -> None:
    tracker = FailureTracker(threshold=1000, clock=Clock())
    for i in range(100):
        tracker.record_failure("momentum", "AAPL", f"e{i}")
    restored = FailureTracker.restore(tracker.snapshot(), threshold=1000, clock=Clock())
    restored.record_failure("momentum", "AAPL", "e100")
    history = restored.snapshot()["history"]
    assert len(history) == 100
    assert (history[0]["error"], history[-1]["error"]) == ("e1", "e100")


def test_reset_is_kept_in_the_snapshot_with_who_and_when() -> None:
    clock = Clock()
    tracker = FailureTracker(threshold=3, clock=clock)
    tracker.record_failure("momentum", "AAPL", "x")
    clock.now = START + timedelta(minutes=5)
    tracker.reset("api:admin")
    snapshot = tracker.snapshot()
    assert snapshot["last_reset"] == {"by": "api:admin", "at": clock.now.isoformat()}
    restored = FailureTracker.restore(snapshot, threshold=3, clock=clock)
    assert restored.snapshot()["last_reset"] == snapshot["last_reset"]


def test_reset_needs_a_name() -> None:
    tracker = FailureTracker(threshold=3, clock=Clock())
    with pytest.raises(ValueError, match=r"^by must be a non-empty string"):
        tracker.reset(" ")


def test_success_of_a_strategy_never_seen_is_harmless(caplog: pytest.LogCaptureFixture) -> None:
    tracker = FailureTracker(threshold=3, clock=Clock())
    with caplog.at_level(logging.INFO, logger="gateway.safety.failures"):
        tracker.record_success("fresh")
    assert tracker.consecutive_for("fresh") == 0
    assert not [r for r in caplog.records if "recovered" in r.getMessage()]


def test_recovery_and_reset_are_logged_with_who_and_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = FailureTracker(threshold=3, clock=Clock())
    tracker.record_failure("momentum", "AAPL", "x")
    tracker.record_failure("momentum", "AAPL", "x")
    with caplog.at_level(logging.INFO, logger="gateway.safety.failures"):
        tracker.record_success("momentum")
        tracker.record_failure("meanrev", None, "x")
        tracker.reset("api:admin")
    messages = [r.getMessage() for r in caplog.records]
    assert "strategy momentum recovered after 2 failures" in messages
    assert "failure streaks reset by api:admin (were {'momentum': 0, 'meanrev': 1})" in messages
