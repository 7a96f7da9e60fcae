"""HaltManager and HaltStateStore, including the seed's 12 halt scenarios.

The emergency scenarios (3, 4, 4b, 12) run the production path: RiskMonitor.evaluate() over a
real Book, QuoteBook, Journal and HaltManager, and gateway/risk/state.py's emergency_breach.
The write policy and write failures are in test_halt_persistence.py.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import RiskConfig
from gateway.risk.state import RiskMeasures, RiskState, emergency_breach
from gateway.safety.halt import (
    HaltEvent,
    HaltManager,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltStateUnreadable,
    HaltTrigger,
    ResumeForbidden,
    ResumeRefused,
)
from tests.unit.test_risk_state_monitor import FakeClock, MonitorRig, Recorder, risk_config

COOLDOWN_S = 300.0
AUTH = "s3cret-resume-code"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EMERGENCY = RiskConfig().emergency.thresholds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


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


def monitor_rig(tmp_path: Path, **kwargs: Any) -> MonitorRig:
    rig = MonitorRig(tmp_path / "monitor", **kwargs)
    return rig


# -- the seed's halt scenarios ------------------------------------------------------------------


def test_1_initialization(manager: HaltManager, store: HaltStateStore) -> None:
    """Seed halt scenario 1: Initialization - a fresh gateway is active, nothing written."""
    assert not manager.is_halted
    assert manager.current is None
    assert manager.summary() is None
    assert manager.persisted is True
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
    assert manager.persisted is True
    # Durable: the file already says so.
    disk = on_disk(store)
    assert disk["current"]["reason"] == "operator says stop"
    assert disk["current"]["trigger"] == "manual"
    assert reopen(store, clock).current == record
    assert events.kinds == ["halt"]
    assert events.events[0].record == record
    assert events.events[0].requested == record
    assert events.events[0].by == "api:strategy"


def test_3_drawdown_halt(tmp_path: Path) -> None:
    """Seed halt scenario 3: Drawdown Halt - 16% >= 15% halts, through RiskMonitor.evaluate()."""
    # Peak 100,000; today started at 85,000; 1,000 AAPL now at 84: drawdown 16%, loss 1.18%.
    rig = monitor_rig(tmp_path, shares=1000, mid="85", marks=("85000", "100000"))
    try:
        assert rig.evaluate_at("84") is RiskState.HALTED
        current = rig.halt.current
        assert current is not None
        assert current.trigger is HaltTrigger.DRAWDOWN
        assert (current.measure, current.threshold) == (0.16, 0.15)
        assert current.reason == "drawdown 16.0000% >= emergency 15.00%"
        assert rig.events.kinds == ["halt"]
    finally:
        rig.close()


def test_4_daily_loss_halt(tmp_path: Path) -> None:
    """Seed halt scenario 4: Daily Loss Halt - 6% >= 5% halts, through RiskMonitor.evaluate()."""
    rig = monitor_rig(tmp_path, shares=1000, mid="100")  # the day starts at 100,000
    try:
        assert rig.evaluate_at("94") is RiskState.HALTED  # 94,000: a 6% daily loss
        current = rig.halt.current
        assert current is not None
        assert current.trigger is HaltTrigger.DAILY_LOSS
        assert (current.measure, current.threshold) == (0.06, 0.05)
    finally:
        rig.close()


def test_4b_portfolio_heat_emergency(tmp_path: Path) -> None:
    """Seed: portfolio heat 40%+ halts (41% here), through RiskMonitor.evaluate()."""
    # 2,050 AAPL at 100 on 105,000 borrowed: equity 100,000, heat 205,000 x 20% / 100,000.
    rig = monitor_rig(
        tmp_path,
        shares=2050,
        mid="100",
        cash="-105000",
        risk=risk_config(stop_loss_percent=0.2),
    )
    try:
        assert not rig.halt.is_halted
        assert rig.evaluate_at("100") is RiskState.HALTED
        current = rig.halt.current
        assert current is not None
        assert current.trigger is HaltTrigger.PORTFOLIO_HEAT
        assert (current.measure, current.threshold) == (0.41, 0.40)
    finally:
        rig.close()


def test_5_trade_blocking(
    manager: HaltManager, store: HaltStateStore, clock: FakeClock, events: Recorder
) -> None:
    """Seed halt scenario 5: Trade Blocking - each blocked order is counted, in memory."""
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    written = store.path.read_bytes()
    for i in range(3):
        assert manager.is_halted
        manager.record_blocked(f"signal s{i} buy 100 AAPL")
    summary = manager.summary()
    assert summary is not None
    assert summary["blocked"] == 3
    # No write and no event per blocked signal: the journal holds each blocked decision.
    assert store.path.read_bytes() == written
    assert "blocked" not in on_disk(store)
    assert events.kinds == ["halt"]
    # The count is not state that survives a restart: it starts again from zero.
    assert (reopen(store, clock).summary() or {})["blocked"] == 0


def test_6_resume_with_cooldown(
    manager: HaltManager, store: HaltStateStore, clock: FakeClock, events: Recorder
) -> None:
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
    assert store.load() == HaltState(last_resume_at=START + timedelta(seconds=COOLDOWN_S))
    assert events.kinds == ["halt", "resume"]
    assert events.events[-1].by == "api:admin"


def test_7_forced_resume(
    manager: HaltManager, clock: FakeClock, store: HaltStateStore, events: Recorder
) -> None:
    """Seed halt scenario 7: Forced Resume - the right auth code overrides cooldown and trigger."""
    manager.halt(
        "drawdown 16% >= 15%", HaltTrigger.DRAWDOWN, by="risk", measure=0.16, threshold=0.15
    )
    manager.record_blocked("one")
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
    assert events.kinds == ["halt", "forced_resume"]
    event = events.events[-1]
    assert event.by == "api:admin"
    assert event.record is not None
    assert event.record.reason == "drawdown 16% >= 15%"
    assert "cooldown_active (290.0s left)" in event.detail
    assert "trigger_active" in event.detail
    assert event.blocked == 1
    assert on_disk(store)["current"] is None
    assert store.load() == HaltState(last_resume_at=START + timedelta(seconds=10))


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


def test_8b_kill_switch_while_halted_marks_kill(
    manager: HaltManager, store: HaltStateStore, clock: FakeClock, events: Recorder
) -> None:
    """A kill while halted keeps the first reason but says cancel-all happened, durably."""
    manager.halt("drawdown", HaltTrigger.DRAWDOWN, by="risk", measure=0.2, threshold=0.15)
    record = manager.halt("kill it", HaltTrigger.KILL_SWITCH, by="cli", kill_switch=True)
    assert record.reason == "drawdown"
    assert record.trigger is HaltTrigger.DRAWDOWN
    assert record.kill_switch is True
    assert on_disk(store)["current"]["kill_switch"] is True
    assert reopen(store, clock).current == record
    assert events.kinds == ["halt", "halt_repeated"]
    repeated = events.events[-1]
    assert repeated.record == record
    assert repeated.requested is not None
    assert repeated.requested.reason == "kill it"
    assert repeated.detail == "kill_switch: kill it"


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
    assert restarted.summary() == {**(manager.summary() or {}), "blocked": 0}
    # The cooldown still runs from the original halt, not from the restart.
    with pytest.raises(ResumeRefused) as refused:
        restarted.resume(by="cli")
    assert refused.value.retry_after_s == pytest.approx(COOLDOWN_S - 30)

    clock.advance(COOLDOWN_S)
    restarted.resume(by="cli")
    again = reopen(store, clock)
    assert not again.is_halted
    assert again.summary() is None
    assert store.load() == HaltState(last_resume_at=clock.now)


def test_10_duplicate_halts(manager: HaltManager, events: Recorder, clock: FakeClock) -> None:
    """Seed halt scenario 10: Duplicate Halts - the first reason stays, the second is heard."""
    first = manager.halt("first reason", HaltTrigger.MANUAL, by="cli")
    clock.advance(5)
    second = manager.halt("second reason", HaltTrigger.DRAWDOWN, by="risk", measure=0.2)
    assert second == first
    assert manager.current == first
    assert events.kinds == ["halt", "halt_repeated"]
    repeated = events.events[1]
    assert repeated.record == first
    assert repeated.requested is not None
    assert (repeated.requested.reason, repeated.requested.trigger, repeated.by) == (
        "second reason",
        HaltTrigger.DRAWDOWN,
        "risk",
    )
    assert repeated.requested.measure == 0.2
    assert repeated.at == START + timedelta(seconds=5)
    assert repeated.detail == "drawdown: second reason"
    # The cooldown is not restarted by the repeated halt.
    summary = manager.summary()
    assert summary is not None
    assert summary["resume_allowed_at"] == (START + timedelta(seconds=COOLDOWN_S)).isoformat()


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
        "persisted": True,
    }
    assert json.loads(json.dumps(summary)) == summary
    assert datetime.fromisoformat(summary["since"]) == START


def measures(daily_loss: str, drawdown: str, heat: str) -> RiskMeasures:
    equity = Decimal(100000)
    return RiskMeasures(
        equity, equity, equity, Decimal(daily_loss), Decimal(drawdown), Decimal(heat)
    )


def test_12_no_false_positives(tmp_path: Path) -> None:
    """Seed halt scenario 12: No False Positives - safe measures never halt."""
    risk = RiskConfig()
    safe = [
        measures("0", "0", "0"),
        measures("0.02", "0.10", "0.25"),  # at the soft limits
        measures("0.0499", "0.1499", "0.3999"),
        measures("0.049999999999", "0.149999999999", "0.399999999999"),
    ]
    for m in safe:
        assert emergency_breach(m, risk) is None, m
    # The same through the monitor: a day that falls to a 4.99% loss and back never halts.
    rig = monitor_rig(tmp_path, shares=1000, mid="100")
    try:
        for mid in ("99", "101", "98.5", "95.01", "99.5"):
            assert rig.evaluate_at(mid) is not RiskState.HALTED, mid
        assert not rig.halt.is_halted
        assert rig.events.kinds == []
    finally:
        rig.close()


@given(
    daily_loss=st.decimals(min_value=0, max_value=EMERGENCY["daily_loss"], places=12),
    drawdown=st.decimals(min_value=0, max_value=EMERGENCY["drawdown"], places=12),
    heat=st.decimals(min_value=0, max_value=EMERGENCY["portfolio_heat"], places=12),
)
def test_12_no_false_positives_property(
    daily_loss: Decimal, drawdown: Decimal, heat: Decimal
) -> None:
    """Seed halt scenario 12 (property): anything below every emergency threshold never halts."""
    values = {"daily_loss": daily_loss, "drawdown": drawdown, "portfolio_heat": heat}
    below = all(values[k] < EMERGENCY[k] for k in values)
    breach = emergency_breach(measures(str(daily_loss), str(drawdown), str(heat)), RiskConfig())
    assert (breach is None) == below


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


def test_resume_when_not_halted_is_a_noop(
    manager: HaltManager, store: HaltStateStore, events: Recorder
) -> None:
    manager.resume(by="api:admin")
    assert not manager.is_halted
    assert events.kinds == []
    assert not store.path.exists()


def test_forced_resume_with_a_wrong_code_is_refused_even_when_not_halted(
    manager: HaltManager, store: HaltStateStore, events: Recorder
) -> None:
    for code in ("nope", None, ""):
        with pytest.raises(ResumeForbidden):
            manager.resume(by="api:admin", force=True, auth_code=code, expected_auth_code=AUTH)
    with pytest.raises(ResumeForbidden):  # and when no code is configured at all
        manager.resume(by="api:admin", force=True, auth_code=AUTH, expected_auth_code=None)
    assert events.kinds == []
    assert not store.path.exists()
    # The right code while not halted is the same no-op as a plain resume.
    manager.resume(by="api:admin", force=True, auth_code=AUTH, expected_auth_code=AUTH)
    assert events.kinds == []


def test_forced_resume_after_cooldown_records_nothing_overridden(
    manager: HaltManager, clock: FakeClock, events: Recorder
) -> None:
    manager.halt("x", HaltTrigger.MANUAL, by="cli")
    clock.advance(COOLDOWN_S)
    manager.resume(by="cli", force=True, auth_code=AUTH, expected_auth_code=AUTH)
    assert events.events[-1].kind == "forced_resume"
    assert events.events[-1].detail == "overrode: nothing; blocked 0 signals while halted"


def test_halt_again_after_resume_is_a_fresh_halt(
    manager: HaltManager, clock: FakeClock, events: Recorder
) -> None:
    manager.halt("one", HaltTrigger.MANUAL, by="cli")
    manager.record_blocked("a")
    clock.advance(COOLDOWN_S)
    manager.resume(by="cli")
    clock.advance(60)
    record = manager.halt("two", HaltTrigger.JOB_FAILURE, by="scheduler")
    assert record.reason == "two"
    assert record.since == clock.now
    assert (manager.summary() or {})["blocked"] == 0
    assert events.kinds == ["halt", "resume", "halt"]
    assert events.events[1].blocked == 1


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
    state = HaltState(current=record, last_resume_at=START)
    store.save(state)
    assert store.load() == state
    leftovers = [p.name for p in store.path.parent.iterdir() if p != store.path]
    assert leftovers == []  # the temp file was renamed, not left behind
    assert on_disk(store) == {
        "schema_version": 2,
        "current": {
            "reason": "r",
            "trigger": "reconciliation",
            "since": START.isoformat(),
            "kill_switch": True,
            "by": "engine",
            "measure": 1.5,
            "threshold": 1.0,
        },
        "last_resume_at": START.isoformat(),
    }


def test_store_load_missing_file_is_none(store: HaltStateStore) -> None:
    assert store.load() is None


def test_save_replaces_atomically(store: HaltStateStore) -> None:
    store.save(HaltState(last_resume_at=START))
    store.save(HaltState(last_resume_at=START + timedelta(seconds=1)))
    loaded = store.load()
    assert loaded is not None
    assert loaded.last_resume_at == START + timedelta(seconds=1)


VALID: dict[str, Any] = {"schema_version": 2, "current": None, "last_resume_at": None}
GOOD_CURRENT: dict[str, Any] = {
    "reason": "r",
    "trigger": "manual",
    "since": START.isoformat(),
    "kill_switch": False,
    "by": "cli",
    "measure": None,
    "threshold": None,
}
BAD_FILES: dict[str, bytes] = {
    "empty": b"",
    "truncated": json.dumps({**VALID, "current": GOOD_CURRENT}).encode()[:60],
    "garbage": b"\x00\xff\xfe garbage \x81",
    "not_an_object": b"[1, 2, 3]",
    "unknown_version": json.dumps({**VALID, "schema_version": 99}).encode(),
    "no_version": json.dumps({k: v for k, v in VALID.items() if k != "schema_version"}).encode(),
    "no_current": json.dumps({k: v for k, v in VALID.items() if k != "current"}).encode(),
    "bad_last_resume": json.dumps({**VALID, "last_resume_at": "yesterday"}).encode(),
    "current_missing_reason": json.dumps(
        {**VALID, "current": {k: v for k, v in GOOD_CURRENT.items() if k != "reason"}}
    ).encode(),
    "v1_bad_current": json.dumps(
        {"schema_version": 1, "current": {**GOOD_CURRENT, "kill_switch": "yes"}, "history": []}
    ).encode(),
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
        b'{"schema_version": 2, "current": {"reason": "r", "trigger": "manual", '
        b'"since": "2026-11-25T12:00:00+00:00", "kill_switch": false, "by": "cli", '
        b'"measure": NaN, "threshold": null}, "last_resume_at": null}'
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
    assert (fresh.summary() or {})["blocked"] == 1
    assert reopen(store, clock).current == fresh.current


def test_clock_must_be_aware(store: HaltStateStore) -> None:
    m = HaltManager(store, resume_cooldown_s=0, clock=lambda: datetime(2026, 1, 1))
    m.restore()
    with pytest.raises(ValueError, match="aware"):
        m.halt("x", HaltTrigger.MANUAL, by="cli")
