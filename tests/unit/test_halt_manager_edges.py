"""HaltManager at its edges: settings, clocks, what the operator's log says, restarts."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.safety.halt import HaltEvent, HaltManager, HaltStateStore, HaltTrigger

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class NoOffset(tzinfo):
    """A time zone that does not know its offset: such a time is not aware."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def manager_at(path: Path, now: datetime, cooldown_s: float = 300) -> HaltManager:
    m = HaltManager(
        HaltStateStore(path / "halt_state.json"), resume_cooldown_s=cooldown_s, clock=lambda: now
    )
    m.restore()
    return m


@pytest.mark.parametrize("cooldown", [math.nan, math.inf, -0.001])
def test_a_cooldown_that_is_not_a_finite_non_negative_number_is_refused(
    tmp_path: Path, cooldown: float
) -> None:
    with pytest.raises(ValueError, match=r"^resume_cooldown_s must be >= 0"):
        HaltManager(HaltStateStore(tmp_path / "h.json"), resume_cooldown_s=cooldown)


def test_a_zero_cooldown_lets_a_resume_through_at_once(tmp_path: Path) -> None:
    m = manager_at(tmp_path, START, cooldown_s=0)
    m.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert (m.summary() or {})["resume_allowed_at"] == START.isoformat()
    m.resume(by="api:admin")
    assert not m.is_halted


def test_a_clock_whose_zone_has_no_offset_is_refused(tmp_path: Path) -> None:
    m = manager_at(tmp_path, datetime(2026, 11, 25, 12, 0, tzinfo=NoOffset()))
    with pytest.raises(ValueError, match="aware"):
        m.halt("stop", HaltTrigger.MANUAL, by="cli")


def test_times_from_a_clock_in_another_zone_are_kept_in_utc(tmp_path: Path) -> None:
    paris = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))
    m = manager_at(tmp_path, paris)
    record = m.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert record.since.tzinfo is UTC
    assert (m.summary() or {})["since"] == "2026-11-25T13:00:00+00:00"


def test_a_first_halt_is_critical_and_a_repeat_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = manager_at(tmp_path, START)
    with caplog.at_level(logging.INFO, logger="gateway.safety.halt"):
        m.halt("desk says stop", HaltTrigger.MANUAL, by="api:strategy")
        m.halt("again", HaltTrigger.DRAWDOWN, by="risk")
        m.halt("kill", HaltTrigger.KILL_SWITCH, by="api:admin")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.CRITICAL, "HALTED (manual) by api:strategy: desk says stop"),
        (logging.WARNING, "halt repeated (drawdown) by risk: again"),
        (logging.CRITICAL, "halt repeated (kill_switch) by api:admin: kill"),  # the kill flag
    ]


def test_a_restart_into_a_halt_says_so_critically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager_at(tmp_path, START).halt("desk says stop", HaltTrigger.MANUAL, by="cli")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.safety.halt"):
        manager_at(tmp_path, START)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.CRITICAL, "restored HALTED: desk says stop")
    ]


def test_a_restart_of_a_trading_gateway_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = manager_at(tmp_path, START, cooldown_s=0)
    first.halt("stop", HaltTrigger.MANUAL, by="cli")
    first.resume(by="cli")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.safety.halt"):
        again = manager_at(tmp_path, START)
    assert not again.is_halted
    assert caplog.records == []


def test_an_unreadable_file_that_cannot_be_moved_aside_still_halts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HaltStateStore(tmp_path / "halt_state.json")
    store.path.write_text('{"schema_version": 99}')
    monkeypatch.setattr(HaltStateStore, "quarantine", lambda self, at: None)
    events: list[HaltEvent] = []
    m = HaltManager(store, resume_cooldown_s=300, clock=lambda: START, listeners=[events.append])
    m.restore()
    assert m.current is not None
    assert m.current.trigger is HaltTrigger.STATE_UNREADABLE
    assert m.current.reason == (
        f"halt state unreadable: {store.path}: unknown schema_version 99 (this gateway reads 1, 2)"
    )
    assert [e.kind for e in events] == ["halt"]


def test_restoring_again_starts_the_blocked_count_from_zero(tmp_path: Path) -> None:
    m = manager_at(tmp_path, START)
    m.halt("stop", HaltTrigger.MANUAL, by="cli")
    m.record_blocked("s1")
    m.restore()
    assert (m.summary() or {})["blocked"] == 0
    assert m.is_halted


def test_a_forced_resume_is_logged_with_what_it_overrode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = manager_at(tmp_path, START)
    m.halt("stop", HaltTrigger.MANUAL, by="cli")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.safety.halt"):
        m.resume(by="api:admin", force=True, auth_code="c", expected_auth_code="c")
    assert [r.getMessage() for r in caplog.records] == [
        "FORCED resume by api:admin of 'stop': overrode: cooldown_active (300.0s left);"
        " blocked 0 signals while halted"
    ]


def test_an_unreadable_file_is_logged_with_why_and_where_it_was_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HaltStateStore(tmp_path / "halt_state.json")
    store.path.write_text('{"schema_version": 99}')
    m = HaltManager(store, resume_cooldown_s=300, clock=lambda: START)
    with caplog.at_level(logging.CRITICAL, logger="gateway.safety.halt"):
        m.restore()
    kept = f"halt_state.json.unreadable-{START:%Y%m%dT%H%M%S%fZ}"
    assert caplog.records[0].getMessage() == (
        f"halt state unreadable, starting HALTED: {store.path}: unknown schema_version 99"
        f" (this gateway reads 1, 2) (kept as {kept})"
    )
