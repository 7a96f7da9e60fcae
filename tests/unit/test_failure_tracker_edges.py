"""FailureTracker's settings at their limits, its messages, and what the operator's log says."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from gateway.safety.failures import FailureTracker, FailureType, SignalGenerationFailure

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return START


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"threshold": 0}, "threshold must be an integer >= 1, got 0"),
        ({"threshold": "3"}, "threshold must be an integer >= 1, got '3'"),
        ({"threshold": 2.0}, "threshold must be an integer >= 1, got 2.0"),
        ({"threshold": True}, "threshold must be an integer >= 1, got True"),
        ({"history_size": 0}, "history_size must be an integer >= 1, got 0"),
        ({"history_size": "5"}, "history_size must be an integer >= 1, got '5'"),
        ({"history_size": True}, "history_size must be an integer >= 1, got True"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError) as raised:
        FailureTracker(**{"threshold": 3, **kwargs}, clock=clock)  # type: ignore[arg-type]
    assert str(raised.value) == says


def test_a_threshold_of_one_halts_on_the_first_failure() -> None:
    calls: list[str] = []
    tracker = FailureTracker(threshold=1, on_threshold=lambda r, f: calls.append(r), clock=clock)
    tracker.record_failure("momentum", None, "x")
    assert calls == ["1 consecutive failures of strategy momentum: strategy_error: x"]


def test_a_history_of_one_keeps_the_last_failure() -> None:
    tracker = FailureTracker(threshold=10, history_size=1, clock=clock)
    tracker.record_failure("momentum", None, "first")
    tracker.record_failure("momentum", None, "second")
    assert [f["error"] for f in tracker.snapshot()["history"]] == ["second"]


def test_without_a_callback_the_threshold_is_still_marked() -> None:
    tracker = FailureTracker(threshold=2, clock=clock)
    for _ in range(3):
        tracker.record_failure("momentum", None, "x")
    assert tracker.snapshot()["fired"] == ["momentum"]


def test_an_error_that_is_neither_exception_nor_text_is_refused() -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    with pytest.raises(ValueError, match=r"^error must be an exception or a message, got 42$"):
        tracker.record_failure("momentum", None, 42)  # type: ignore[arg-type]
    assert tracker.status()["total"] == 0


def test_an_unknown_failure_type_lists_the_known_ones() -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    with pytest.raises(ValueError) as raised:
        tracker.record_failure("momentum", None, "x", "meteor")
    assert str(raised.value) == (
        "failure_type must be one of strategy_error, data_error, broker_error, timeout,"
        " validation_error, got 'meteor'"
    )


def test_names_are_stripped() -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    failure = tracker.record_failure("  momentum ", " AAPL ", "x", FailureType.TIMEOUT)
    assert (failure.strategy, failure.symbol) == ("momentum", "AAPL")
    assert tracker.status()["by_symbol"] == {"AAPL": 1}
    assert tracker.status()["by_type"] == {"timeout": 1}
    tracker.record_success(" momentum ")
    assert tracker.consecutive_for("momentum") == 0


def test_a_restored_failure_type_must_be_text() -> None:
    failure = SignalGenerationFailure(
        "momentum", None, "x", "strategy_error", FailureType.STRATEGY_ERROR, START, 1
    ).to_dict()
    with pytest.raises(ValueError, match="failure_type must be one of"):
        SignalGenerationFailure.from_dict({**failure, "failure_type": 1})


def test_each_failure_and_the_threshold_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    tracker = FailureTracker(threshold=2, clock=clock)
    with caplog.at_level(logging.INFO, logger="gateway.safety.failures"):
        tracker.record_failure("momentum", "AAPL", ValueError("no bars"), FailureType.DATA_ERROR)
        tracker.record_failure("momentum", None, "feed gap", FailureType.DATA_ERROR)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "signal failure 1/2 of strategy momentum (symbol AAPL, data_error): ValueError: no bars",
        ),
        (
            logging.WARNING,
            "signal failure 2/2 of strategy momentum (symbol None, data_error): data_error: feed gap",
        ),
        (
            logging.CRITICAL,
            "failure threshold reached: 2 consecutive failures of strategy momentum:"
            " data_error: feed gap",
        ),
    ]


@pytest.mark.parametrize("strategy", ["", " ", None])
def test_a_success_without_a_strategy_is_refused_by_name(strategy: object) -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    with pytest.raises(ValueError) as raised:
        tracker.record_success(strategy)  # type: ignore[arg-type]
    assert str(raised.value) == f"strategy must be a non-empty string, got {strategy!r}"


@pytest.mark.parametrize(
    ("strategy", "symbol", "says"),
    [
        (" ", "AAPL", "strategy must be a non-empty string, got ' '"),
        ("momentum", "", "symbol must be a non-empty string, got ''"),
    ],
)
def test_a_failure_without_a_name_is_refused_by_name(strategy: str, symbol: str, says: str) -> None:
    tracker = FailureTracker(threshold=3, clock=clock)
    with pytest.raises(ValueError) as raised:
        tracker.record_failure(strategy, symbol, "x")
    assert str(raised.value) == says
    assert tracker.status()["total"] == 0
