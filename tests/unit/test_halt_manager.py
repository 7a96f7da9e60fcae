"""HaltManager, HaltStateStore and evaluate_emergency, including the seed's 12 halt scenarios."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.safety.halt import (
    HaltEvent,
    HaltManager,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltStateUnreadable,
    HaltStateWriteError,
    HaltTrigger,
    ResumeForbidden,
    ResumeRefused,
    evaluate_emergency,
)

COOLDOWN_S = 300.0
AUTH = "s3cret-resume-code"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EMERGENCY = {"daily_loss": 0.05, "drawdown": 0.15, "portfolio_heat": 0.40}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    def __init__(self) -> None:
        self.events: list[HaltEvent] = []

    def __call__(self, event: HaltEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> HaltStateStore:
    return HaltStateStore(tmp_path / "state" / "halt_state.json")


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def manager(store: HaltStateStore, clock: FakeClock, events: Recorder) -> HaltManager:
    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock, listeners=[events])
    m.restore()
    return m


def reopen(store: HaltStateStore, clock: FakeClock) -> HaltManager:
    """A new manager on the same file, as after a restart."""
    m = HaltManager(HaltStateStore(store.path), resume_cooldown_s=COOLDOWN_S, clock=clock)
    m.restore()
    return m


def on_disk(store: HaltStateStore) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(store.path.read_text())
    return data


# -- the seed's halt scenarios ------------------------------------------------------------------


def test_1_initialization(manager: HaltManager, store: HaltStateStore) -> None:
    """Seed halt scenario 1: Initialization - a fresh gateway is active, nothing written."""
    assert not manager.is_halted
    assert manager.current is None
    assert manager.blocked_count == 0
    assert manager.history == []
    assert manager.summary() is None
    assert manager.resume_allowed_at is None
    assert not store.path.exists()


def test_2_manual_halt(
    manager: HaltManager, store: HaltStateStore, clock: FakeClock, events: Recorder
) -> None:
    """Seed halt scenario 2: Manual Halt - halts, durably, before returning."""
    record = manager.halt("operator says stop", HaltTrigger.MANUAL, by="api:strategy")

    assert record == HaltRecord(
        reason="operator says stop",
        trigger=HaltTrigger.MANUAL,
        since=START,
        kill_switch=False,
        by="api:strategy",
        measure=None,
        threshold=None,
    )
    assert manager.is_halted
    assert manager.current == record
    # Durable: the file already says so.
    disk = on_disk(store)
    assert disk["current"]["reason"] == "operator says stop"
    assert disk["current"]["trigger"] == "manual"
    assert events.kinds == ["halt"]
    assert events.events[0].record == record
    assert events.events[0].by == "api:strategy"
    assert [h.kind for h in manager.history] == ["halt"]


def test_3_drawdown_halt(manager: HaltManager) -> None:
    """Seed halt scenario 3: Drawdown Halt - 16% >= 15% triggers a halt."""
    breach = evaluate_emergency({"daily_loss": 0.01, "drawdown": 0.16}, EMERGENCY)
    assert breach == (HaltTrigger.DRAWDOWN, 0.16, 0.15)
    trigger, measure, threshold = breach
    manager.halt(
        f"drawdown {measure:.0%} >= {threshold:.0%}",
        trigger,
        by="risk",
        measure=measure,
        threshold=threshold,
    )
    assert manager.current is not None
    assert manager.current.trigger is HaltTrigger.DRAWDOWN
    assert (manager.current.measure, manager.current.threshold) == (0.16, 0.15)
    assert manager.history[0].measure == 0.16


def test_4_daily_loss_halt(manager: HaltManager) -> None:
    """Seed halt scenario 4: Daily Loss Halt - 6% >= 5% triggers a halt."""
    breach = evaluate_emergency({"daily_loss": 0.06, "drawdown": 0.02}, EMERGENCY)
    assert breach == (HaltTrigger.DAILY_LOSS, 0.06, 0.05)
    trigger, measure, threshold = breach
    manager.halt("daily loss 6% >= 5%", trigger, by="risk", measure=measure, threshold=threshold)
    assert manager.is_halted
    assert manager.current is not None
    assert manager.current.trigger is HaltTrigger.DAILY_LOSS


def test_4b_portfolio_heat_emergency() -> None:
    """Seed: portfolio heat 40%+ halts."""
    assert evaluate_emergency({"portfolio_heat": 0.41}, EMERGENCY) == (
        HaltTrigger.PORTFOLIO_HEAT,
        0.41,
        0.40,
    )


def test_5_trade_blocking(
    manager: HaltManager, store: HaltStateStore, clock: FakeClock, events: Recorder
) -> None:
    """Seed halt scenario 5: Trade Blocking - each blocked order is counted, durably."""
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    for i in range(3):
        assert manager.is_halted
        manager.record_blocked(f"signal s{i} buy 100 AAPL")
    assert manager.blocked_count == 3
    assert on_disk(store)["blocked"] == 3
    assert reopen(store, clock).blocked_count == 3
    assert events.kinds == ["halt", "blocked", "blocked", "blocked"]
    assert events.events[-1].detail == "signal s2 buy 100 AAPL"
    summary = manager.summary()
    assert summary is not None
    assert summary["blocked"] == 3


def test_6_resume_with_cooldown(manager: HaltManager, clock: FakeClock, events: Recorder) -> None:
    """Seed halt scenario 6: Resume Cooldown - refused before 5 minutes, allowed after."""
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    clock.advance(120)
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin")
    assert refused.value.code == "cooldown_active"
    assert refused.value.retry_after_s == pytest.approx(180.0)
    assert refused.value.to_dict()["retry_after_s"] == pytest.approx(180.0)
    assert manager.is_halted

    clock.advance(179.5)
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin")
    assert refused.value.retry_after_s == pytest.approx(0.5)

    clock.advance(0.5)  # exactly at resume_allowed_at
    manager.resume(by="api:admin")
    assert not manager.is_halted
    assert manager.last_resume_at == START + timedelta(seconds=COOLDOWN_S)
    assert events.kinds == ["halt", "resume"]
    assert manager.history[-1].kind == "resume"
    assert manager.history[-1].by == "api:admin"


def test_7_forced_resume(
    manager: HaltManager, clock: FakeClock, store: HaltStateStore, events: Recorder
) -> None:
    """Seed halt scenario 7: Forced Resume - the right auth code overrides cooldown and trigger."""
    manager.halt(
        "drawdown 16% >= 15%", HaltTrigger.DRAWDOWN, by="risk", measure=0.16, threshold=0.15
    )
    clock.advance(10)

    def still_bad(record: HaltRecord) -> bool:
        return True

    with pytest.raises(ResumeForbidden):
        manager.resume(by="api:admin", force=True, auth_code="wrong", expected_auth_code=AUTH)
    with pytest.raises(ResumeForbidden):
        manager.resume(by="api:admin", force=True, auth_code=None, expected_auth_code=AUTH)
    with pytest.raises(ResumeForbidden):  # force is disabled when no code is configured
        manager.resume(by="api:admin", force=True, auth_code="", expected_auth_code="")
    with pytest.raises(ResumeForbidden):
        manager.resume(by="api:admin", force=True, auth_code=AUTH, expected_auth_code=None)
    assert manager.is_halted

    manager.resume(
        by="api:admin",
        force=True,
        auth_code=AUTH,
        expected_auth_code=AUTH,
        trigger_active=still_bad,
    )
    assert not manager.is_halted
    entry = manager.history[-1]
    assert entry.kind == "forced_resume"
    assert entry.by == "api:admin"
    assert entry.reason == "drawdown 16% >= 15%"
    assert "cooldown_active (290.0s left)" in entry.detail
    assert "trigger_active" in entry.detail
    assert events.kinds == ["halt", "forced_resume"]
    assert on_disk(store)["history"][-1]["kind"] == "forced_resume"
    assert on_disk(store)["current"] is None


def test_8_kill_switch(manager: HaltManager, events: Recorder) -> None:
    """Seed halt scenario 8: Kill Switch - immediate halt marked as a kill."""
    record = manager.halt("flatten now", HaltTrigger.KILL_SWITCH, by="api:strategy")
    assert manager.is_halted
    assert record.kill_switch is True
    assert record.trigger is HaltTrigger.KILL_SWITCH
    summary = manager.summary()
    assert summary is not None
    assert summary["kill_switch"] is True
    assert summary["trigger"] == "kill_switch"


def test_8b_kill_switch_while_halted_marks_kill(manager: HaltManager) -> None:
    """A kill while halted keeps the first reason but says cancel-all happened."""
    manager.halt("drawdown", HaltTrigger.DRAWDOWN, by="risk", measure=0.2, threshold=0.15)
    record = manager.halt("kill it", HaltTrigger.KILL_SWITCH, by="cli", kill_switch=True)
    assert record.reason == "drawdown"
    assert record.trigger is HaltTrigger.DRAWDOWN
    assert record.kill_switch is True
    assert manager.history[-1].kind == "halt_repeated"
    assert manager.history[-1].reason == "kill it"


def test_9_state_persistence(manager: HaltManager, store: HaltStateStore, clock: FakeClock) -> None:
    """Seed halt scenario 9: State Persistence - a restart restores the same halt."""
    manager.halt("first", HaltTrigger.DAILY_LOSS, by="risk", measure=0.06, threshold=0.05)
    manager.record_blocked("one")
    manager.record_blocked("two")
    clock.advance(30)

    restarted = reopen(store, clock)
    assert restarted.is_halted
    assert restarted.current == manager.current
    assert restarted.current is not None
    assert restarted.current.since == START
    assert restarted.current.reason == "first"
    assert restarted.blocked_count == 2
    assert restarted.history == manager.history
    assert restarted.summary() == manager.summary()
    # The cooldown still runs from the original halt, not from the restart.
    with pytest.raises(ResumeRefused) as refused:
        restarted.resume(by="cli")
    assert refused.value.retry_after_s == pytest.approx(COOLDOWN_S - 30)

    clock.advance(COOLDOWN_S)
    restarted.resume(by="cli")
    again = reopen(store, clock)
    assert not again.is_halted
    assert again.blocked_count == 0
    assert again.last_resume_at == clock.now
    assert [h.kind for h in again.history] == ["halt", "resume"]
    assert again.history[-1].blocked == 2


def test_10_duplicate_halts(manager: HaltManager, events: Recorder, clock: FakeClock) -> None:
    """Seed halt scenario 10: Duplicate Halts - the first reason stays, the second is recorded."""
    first = manager.halt("first reason", HaltTrigger.MANUAL, by="cli")
    clock.advance(5)
    second = manager.halt("second reason", HaltTrigger.DRAWDOWN, by="risk", measure=0.2)
    assert second == first
    assert manager.current == first
    assert [h.kind for h in manager.history] == ["halt", "halt_repeated"]
    repeated = manager.history[1]
    assert (repeated.reason, repeated.trigger, repeated.by) == (
        "second reason",
        HaltTrigger.DRAWDOWN,
        "risk",
    )
    assert repeated.at == START + timedelta(seconds=5)
    assert events.kinds == ["halt", "halt_repeated"]
    # The cooldown is not restarted by the repeated halt.
    assert manager.resume_allowed_at == START + timedelta(seconds=COOLDOWN_S)


def test_11_halt_summary(manager: HaltManager) -> None:
    """Seed halt scenario 11: Halt Summary - the status's halt object."""
    manager.halt("drawdown 16% >= 15%", "drawdown", by="risk", measure=0.16, threshold=0.15)
    manager.record_blocked("x")
    summary = manager.summary()
    assert summary == {
        "reason": "drawdown 16% >= 15%",
        "trigger": "drawdown",
        "since": "2026-11-25T12:00:00+00:00",
        "resume_allowed_at": "2026-11-25T12:05:00+00:00",
        "kill_switch": False,
        "blocked": 1,
        "by": "risk",
    }
    assert json.loads(json.dumps(summary)) == summary
    assert datetime.fromisoformat(summary["since"]) == START


def test_12_no_false_positives(manager: HaltManager) -> None:
    """Seed halt scenario 12: No False Positives - safe measures never halt."""
    safe = [
        {"daily_loss": 0.0, "drawdown": 0.0, "portfolio_heat": 0.0},
        {"daily_loss": 0.02, "drawdown": 0.10, "portfolio_heat": 0.25},  # at the soft limits
        {"daily_loss": 0.0499, "drawdown": 0.1499, "portfolio_heat": 0.3999},
        {
            "daily_loss": math.nextafter(0.05, 0),
            "drawdown": math.nextafter(0.15, 0),
            "portfolio_heat": math.nextafter(0.40, 0),
        },
        {"daily_loss": -0.03, "drawdown": 0.0},  # a winning day; heat unknown
        {},
    ]
    for measures in safe:
        assert evaluate_emergency(measures, EMERGENCY) is None, measures
    assert not manager.is_halted


@given(
    daily_loss=st.floats(min_value=-1.0, max_value=0.05, exclude_max=True),
    drawdown=st.floats(min_value=0.0, max_value=0.15, exclude_max=True),
    heat=st.floats(min_value=0.0, max_value=0.40, exclude_max=True),
)
def test_12_no_false_positives_property(daily_loss: float, drawdown: float, heat: float) -> None:
    """Seed halt scenario 12 (property): anything below every emergency threshold never halts."""
    measures = {"daily_loss": daily_loss, "drawdown": drawdown, "portfolio_heat": heat}
    assert evaluate_emergency(measures, EMERGENCY) is None


@given(
    key=st.sampled_from(sorted(EMERGENCY)),
    excess=st.floats(min_value=0.0, max_value=10.0),
)
def test_any_measure_at_or_past_its_threshold_halts(key: str, excess: float) -> None:
    measures = {"daily_loss": 0.0, "drawdown": 0.0, "portfolio_heat": 0.0}
    measures[key] = EMERGENCY[key] + excess
    breach = evaluate_emergency(measures, EMERGENCY)
    assert breach is not None
    assert breach[0] == HaltTrigger(key)


# -- boundaries and evaluate_emergency ------------------------------------------------------------


def test_threshold_exactly_reached_halts() -> None:
    """0.15 drawdown against a 0.15 threshold is a breach (>=)."""
    assert evaluate_emergency({"drawdown": 0.15}, EMERGENCY) == (HaltTrigger.DRAWDOWN, 0.15, 0.15)
    assert evaluate_emergency({"daily_loss": 0.05}, EMERGENCY) is not None
    assert evaluate_emergency({"portfolio_heat": 0.40}, EMERGENCY) is not None


def test_first_breach_in_order_daily_loss_drawdown_heat() -> None:
    all_bad = {"portfolio_heat": 0.9, "drawdown": 0.9, "daily_loss": 0.9}
    assert evaluate_emergency(all_bad, EMERGENCY) == (HaltTrigger.DAILY_LOSS, 0.9, 0.05)
    assert evaluate_emergency({"portfolio_heat": 0.9, "drawdown": 0.9}, EMERGENCY) == (
        HaltTrigger.DRAWDOWN,
        0.9,
        0.15,
    )


def test_unknown_measure_or_threshold_is_not_checked() -> None:
    assert evaluate_emergency({"drawdown": 0.9}, {"daily_loss": 0.05}) is None
    assert evaluate_emergency({"other": 9.0}, {"other": 0.1}) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_measure_is_a_bug(bad: float) -> None:
    with pytest.raises(ValueError, match="drawdown"):
        evaluate_emergency({"drawdown": bad}, EMERGENCY)


# -- resume refusals ----------------------------------------------------------------------------


def test_resume_refused_while_trigger_active(manager: HaltManager, clock: FakeClock) -> None:
    manager.halt("drawdown", HaltTrigger.DRAWDOWN, by="risk", measure=0.16, threshold=0.15)
    clock.advance(COOLDOWN_S + 1)
    seen: list[HaltRecord] = []

    def active(record: HaltRecord) -> bool:
        seen.append(record)
        return True

    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin", trigger_active=active)
    assert refused.value.code == "trigger_active"
    assert refused.value.retry_after_s is None
    assert "0.16 >= 0.15" in refused.value.message
    assert seen == [manager.current]
    assert manager.is_halted

    manager.resume(by="api:admin", trigger_active=lambda record: False)
    assert not manager.is_halted


def test_resume_refused_when_trigger_check_fails(manager: HaltManager, clock: FakeClock) -> None:
    """A check that raises cannot prove recovery: stay halted."""
    manager.halt("heat", HaltTrigger.PORTFOLIO_HEAT, by="risk")
    clock.advance(COOLDOWN_S)

    def broken(record: HaltRecord) -> bool:
        raise RuntimeError("no equity")

    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin", trigger_active=broken)
    assert refused.value.code == "trigger_active"
    assert "no equity" in refused.value.message


def test_cooldown_refusal_comes_before_trigger_check(manager: HaltManager) -> None:
    manager.halt("x", HaltTrigger.DRAWDOWN, by="risk")
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin", trigger_active=lambda record: True)
    assert refused.value.code == "cooldown_active"
    assert refused.value.retry_after_s == pytest.approx(COOLDOWN_S)


def test_resume_when_not_halted_is_a_noop(manager: HaltManager, store: HaltStateStore) -> None:
    manager.resume(by="api:admin")
    assert not manager.is_halted
    assert manager.history == []
    assert not store.path.exists()
    with pytest.raises(ResumeForbidden):  # a wrong code is refused even then
        manager.resume(by="api:admin", force=True, auth_code="nope", expected_auth_code=AUTH)


def test_forced_resume_after_cooldown_records_nothing_overridden(
    manager: HaltManager, clock: FakeClock
) -> None:
    manager.halt("x", HaltTrigger.MANUAL, by="cli")
    clock.advance(COOLDOWN_S)
    manager.resume(by="cli", force=True, auth_code=AUTH, expected_auth_code=AUTH)
    assert manager.history[-1].detail == "overrode: nothing"


def test_halt_again_after_resume_is_a_fresh_halt(manager: HaltManager, clock: FakeClock) -> None:
    manager.halt("one", HaltTrigger.MANUAL, by="cli")
    manager.record_blocked("a")
    clock.advance(COOLDOWN_S)
    manager.resume(by="cli")
    clock.advance(60)
    record = manager.halt("two", HaltTrigger.JOB_FAILURE, by="scheduler")
    assert record.reason == "two"
    assert record.since == clock.now
    assert manager.blocked_count == 0
    assert [h.kind for h in manager.history] == ["halt", "resume", "halt"]


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   "])
def test_empty_reason_refused(manager: HaltManager, reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        manager.halt(reason, HaltTrigger.MANUAL, by="cli")
    assert not manager.is_halted


def test_unknown_trigger_refused(manager: HaltManager) -> None:
    with pytest.raises(ValueError, match="trigger"):
        manager.halt("x", "meteor", by="cli")


def test_empty_by_refused(manager: HaltManager) -> None:
    with pytest.raises(ValueError, match="by"):
        manager.halt("x", HaltTrigger.MANUAL, by="")


def test_non_finite_measure_refused(manager: HaltManager) -> None:
    with pytest.raises(ValueError, match="measure"):
        manager.halt("x", HaltTrigger.DRAWDOWN, by="risk", measure=math.nan)


def test_negative_cooldown_refused(store: HaltStateStore) -> None:
    with pytest.raises(ValueError, match="resume_cooldown_s"):
        HaltManager(store, resume_cooldown_s=-1)


# -- listeners ----------------------------------------------------------------------------------


def test_listener_that_raises_does_not_break_a_halt(
    store: HaltStateStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    after = Recorder()

    def broken(event: HaltEvent) -> None:
        raise RuntimeError("alerting is down")

    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock, listeners=[broken, after])
    m.restore()
    record = m.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert m.is_halted
    assert m.current == record
    assert on_disk(store)["current"]["reason"] == "stop"
    assert after.kinds == ["halt"]  # later listeners still hear it
    assert "alerting is down" in caplog.text


def test_events_carry_the_summary(manager: HaltManager, events: Recorder) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    event = events.events[0]
    assert event.at == START
    assert event.summary == manager.summary()
    assert event.detail == "stop"


# -- the store and unreadable state ---------------------------------------------------------


def test_store_round_trip(store: HaltStateStore, clock: FakeClock) -> None:
    record = HaltRecord("r", HaltTrigger.RECONCILIATION, START, True, "engine", 1.5, 1.0)
    state = HaltState(current=record, blocked=4, history=(), last_resume_at=START)
    store.save(state)
    assert store.load() == state
    leftovers = [p.name for p in store.path.parent.iterdir() if p != store.path]
    assert leftovers == []  # the temp file was renamed, not left behind
    assert on_disk(store)["schema_version"] == 1


def test_store_load_missing_file_is_none(store: HaltStateStore) -> None:
    assert store.load() is None


def test_save_replaces_atomically(store: HaltStateStore) -> None:
    store.save(HaltState(blocked=1))
    store.save(HaltState(blocked=2))
    loaded = store.load()
    assert loaded is not None
    assert loaded.blocked == 2


VALID: dict[str, Any] = {
    "schema_version": 1,
    "current": None,
    "blocked": 0,
    "last_resume_at": None,
    "history": [],
}
BAD_FILES: dict[str, bytes] = {
    "empty": b"",
    "truncated": json.dumps({**VALID, "history": []}).encode()[:25],
    "garbage": b"\x00\xff\xfe garbage \x81",
    "not_an_object": b"[1, 2, 3]",
    "unknown_version": json.dumps({**VALID, "schema_version": 99}).encode(),
    "no_version": json.dumps({k: v for k, v in VALID.items() if k != "schema_version"}).encode(),
    "missing_field": json.dumps({k: v for k, v in VALID.items() if k != "blocked"}).encode(),
    "negative_blocked": json.dumps({**VALID, "blocked": -1}).encode(),
    "bad_trigger": json.dumps(
        {
            **VALID,
            "current": {
                "reason": "r",
                "trigger": "meteor",
                "since": START.isoformat(),
                "kill_switch": False,
                "by": "cli",
                "measure": None,
                "threshold": None,
            },
        }
    ).encode(),
    "naive_since": json.dumps(
        {
            **VALID,
            "current": {
                "reason": "r",
                "trigger": "manual",
                "since": "2026-11-25T12:00:00",
                "kill_switch": False,
                "by": "cli",
                "measure": None,
                "threshold": None,
            },
        }
    ).encode(),
    "nan_measure": (
        b'{"schema_version": 1, "current": {"reason": "r", "trigger": "manual", '
        b'"since": "2026-11-25T12:00:00+00:00", "kill_switch": false, "by": "cli", '
        b'"measure": NaN, "threshold": null}, "blocked": 0, "last_resume_at": null, '
        b'"history": []}'
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_store_refuses_unreadable_file(store: HaltStateStore, name: str) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(BAD_FILES[name])
    with pytest.raises(HaltStateUnreadable) as exc:
        store.load()
    assert str(store.path) in exc.value.reason


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_state_starts_halted(
    store: HaltStateStore, clock: FakeClock, events: Recorder, name: str
) -> None:
    """Corrupt, truncated, garbage or unknown-version state -> HALTED, state_unreadable."""
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(BAD_FILES[name])
    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock, listeners=[events])
    m.restore()
    assert m.is_halted
    assert m.current is not None
    assert m.current.trigger is HaltTrigger.STATE_UNREADABLE
    assert m.current.reason.startswith("halt state unreadable: ")
    assert m.current.by == "restore"
    assert events.kinds == ["halt"]
    # The bad file is kept aside as evidence, and a fresh, readable state replaces it.
    kept = list(store.path.parent.glob("halt_state.json.unreadable-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == BAD_FILES[name]
    assert kept[0].name in m.current.reason
    again = reopen(store, clock)
    assert again.current == m.current


def test_unknown_version_reason_names_the_version(store: HaltStateStore, clock: FakeClock) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(BAD_FILES["unknown_version"])
    m = reopen(store, clock)
    assert m.current is not None
    assert "schema_version 99" in m.current.reason


def test_methods_restore_first_so_a_persisted_halt_is_never_overwritten(
    store: HaltStateStore, clock: FakeClock
) -> None:
    reopen(store, clock).halt("persisted", HaltTrigger.MANUAL, by="cli")
    fresh = HaltManager(HaltStateStore(store.path), resume_cooldown_s=COOLDOWN_S, clock=clock)
    fresh.record_blocked("before restore() was called")  # no explicit restore()
    assert fresh.current is not None
    assert fresh.current.reason == "persisted"
    assert reopen(store, clock).blocked_count == 1


def test_history_is_capped(store: HaltStateStore, clock: FakeClock) -> None:
    m = HaltManager(store, resume_cooldown_s=0, clock=clock, history_limit=5)
    m.restore()
    for i in range(4):
        m.halt(f"h{i}", HaltTrigger.MANUAL, by="cli")
        m.resume(by="cli")
    assert len(m.history) == 5
    assert m.history[-1].kind == "resume"
    assert m.history[0].reason == "h1"
    assert len(on_disk(store)["history"]) == 5


def test_halt_stays_in_memory_when_the_disk_fails(
    tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    """Fail safe: a halt that cannot be written still halts, and says it is not durable."""
    state_dir = tmp_path / "state"
    m = HaltManager(
        HaltStateStore(state_dir / "halt_state.json"),
        resume_cooldown_s=COOLDOWN_S,
        clock=clock,
        listeners=[events],
    )
    m.restore()  # nothing saved yet: active
    state_dir.write_text("a file where the state directory should be")
    with pytest.raises(HaltStateWriteError):
        m.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert m.is_halted
    assert events.kinds == ["halt"]
    clock.advance(COOLDOWN_S)
    with pytest.raises(HaltStateWriteError):
        m.resume(by="cli")
    assert m.is_halted  # a resume that is not durable does not happen


def test_clock_must_be_aware(store: HaltStateStore) -> None:
    m = HaltManager(store, resume_cooldown_s=0, clock=lambda: datetime(2026, 1, 1))
    m.restore()
    with pytest.raises(ValueError, match="aware"):
        m.halt("x", HaltTrigger.MANUAL, by="cli")
