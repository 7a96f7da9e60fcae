"""What the halt file holds, when it is written, and what happens when it cannot be.

The file holds only the halt in force and the last resume, and is written only when that
changes (first halt, kill flag, resume). A failed write never undoes or refuses a halt: the
gateway is halted in memory, `persisted` is False, and `retry_persist()` writes it later. A
resume that cannot be written does not happen.

Failures are real: the file's path is made a non-empty directory, so the rename fails as a full
or broken disk would make it fail; removing the directory brings the "disk" back.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from brokers.base import OrderRequest
from brokers.simulated.broker import SimulatedBroker
from gateway.safety.halt import (
    HaltManager,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltStateWriteError,
    HaltTrigger,
)
from gateway.safety.killswitch import KillSwitch
from tests.unit.test_risk_state_monitor import FakeClock, Recorder

COOLDOWN_S = 300.0
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class CountingStore(HaltStateStore):
    """The real store (atomic, durable), counting how often a write was attempted."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes = 0

    def save(self, state: HaltState) -> None:
        self.writes += 1
        super().save(state)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "state" / "halt_state.json")


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def manager(store: CountingStore, clock: FakeClock, events: Recorder) -> HaltManager:
    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock, listeners=[events])
    m.restore()
    return m


def break_disk(store: HaltStateStore) -> None:
    """Writes to the halt file fail from now on (its path is a non-empty directory)."""
    store.path.unlink(missing_ok=True)
    store.path.mkdir(parents=True)
    (store.path / "in-the-way").write_text("")


def repair_disk(store: HaltStateStore) -> None:
    shutil.rmtree(store.path)


def on_disk(store: HaltStateStore) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(store.path.read_text())
    return data


def reopen(store: HaltStateStore, clock: FakeClock) -> HaltManager:
    m = HaltManager(HaltStateStore(store.path), resume_cooldown_s=COOLDOWN_S, clock=clock)
    m.restore()
    return m


# -- what is written, and when --------------------------------------------------------------------


def test_the_file_holds_only_the_halt_in_force_and_the_last_resume(
    manager: HaltManager, store: CountingStore, clock: FakeClock
) -> None:
    manager.halt("drawdown", HaltTrigger.DRAWDOWN, by="risk", measure=0.16, threshold=0.15)
    manager.record_blocked("s1 buy 1 AAPL")
    assert on_disk(store) == {
        "schema_version": 2,
        "current": {
            "reason": "drawdown",
            "trigger": "drawdown",
            "since": START.isoformat(),
            "kill_switch": False,
            "by": "risk",
            "measure": 0.16,
            "threshold": 0.15,
        },
        "last_resume_at": None,
    }
    clock.advance(COOLDOWN_S)
    manager.resume(by="cli")
    assert on_disk(store) == {
        "schema_version": 2,
        "current": None,
        "last_resume_at": clock.now.isoformat(),
    }
    assert store.writes == 2


def test_a_thousand_repeated_halts_write_nothing(
    manager: HaltManager, store: CountingStore, clock: FakeClock, events: Recorder
) -> None:
    first = manager.halt("first", HaltTrigger.MANUAL, by="api:strategy")
    written = store.path.read_bytes()
    for i in range(1000):
        clock.advance(0.1)
        trigger = (HaltTrigger.MANUAL, HaltTrigger.DRAWDOWN, HaltTrigger.JOB_FAILURE)[i % 3]
        assert manager.halt(f"again {i}", trigger, by=f"client-{i % 7}") == first
    assert store.writes == 1
    assert store.path.read_bytes() == written
    # Every repeated halt is still heard, with what it asked for.
    assert events.kinds == ["halt"] + ["halt_repeated"] * 1000
    last = events.events[-1]
    assert last.record == first
    assert last.requested is not None
    assert (last.requested.reason, last.requested.trigger) == ("again 999", HaltTrigger.MANUAL)
    assert last.detail == "manual: again 999"


def test_kill_flag_on_a_repeated_halt_is_written_once(
    manager: HaltManager, store: CountingStore, clock: FakeClock, events: Recorder
) -> None:
    manager.halt("heat", HaltTrigger.PORTFOLIO_HEAT, by="risk", measure=0.41, threshold=0.4)
    clock.advance(1)
    killed = manager.halt("kill", HaltTrigger.KILL_SWITCH, by="api:admin")
    assert killed.kill_switch is True
    assert (killed.reason, killed.trigger, killed.since) == (
        "heat",
        HaltTrigger.PORTFOLIO_HEAT,
        START,
    )
    assert store.writes == 2
    assert on_disk(store)["current"]["kill_switch"] is True
    assert reopen(store, clock).current == killed
    # A second kill, and a plain halt, change nothing: nothing written, the flag stays.
    manager.halt("kill again", HaltTrigger.KILL_SWITCH, by="api:admin", kill_switch=True)
    manager.halt("plain", HaltTrigger.MANUAL, by="cli")
    assert store.writes == 2
    assert manager.current == killed
    assert events.kinds == ["halt", "halt_repeated", "halt_repeated", "halt_repeated"]


def test_record_blocked_does_no_io_and_emits_nothing(
    manager: HaltManager, store: CountingStore, events: Recorder
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    break_disk(store)  # any write attempt would now fail and be logged
    for i in range(500):
        manager.record_blocked(f"s{i} buy 1 AAPL")
    assert store.writes == 1
    assert manager.persisted is True
    assert (manager.summary() or {})["blocked"] == 500
    assert events.kinds == ["halt"]


def test_resume_writes_once_and_its_event_carries_the_blocked_count(
    manager: HaltManager, store: CountingStore, clock: FakeClock, events: Recorder
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    for i in range(3):
        manager.record_blocked(f"s{i}")
    clock.advance(COOLDOWN_S)
    manager.resume(by="api:admin")
    assert store.writes == 2
    resumed = events.events[-1]
    assert (resumed.kind, resumed.blocked) == ("resume", 3)
    assert resumed.detail == "blocked 3 signals while halted"
    manager.halt("again", HaltTrigger.MANUAL, by="cli")
    assert (manager.summary() or {})["blocked"] == 0  # the next halt counts from zero


def test_repeated_halt_does_not_restart_the_cooldown(
    manager: HaltManager, store: CountingStore, clock: FakeClock
) -> None:
    """The cooldown runs from the FIRST halt's since, whatever halts come after it."""
    manager.halt("first", HaltTrigger.MANUAL, by="cli")
    clock.advance(200)
    manager.halt("again", HaltTrigger.MANUAL, by="cli")
    manager.halt("kill", HaltTrigger.KILL_SWITCH, by="cli")  # changes the flag: written
    assert (manager.summary() or {})["resume_allowed_at"] == START.replace(minute=5).isoformat()
    assert on_disk(store)["current"]["since"] == START.isoformat()
    clock.advance(100)  # 300 s after the first halt, 100 s after the last
    manager.resume(by="api:admin")
    assert not manager.is_halted


# -- schema 1 files ---------------------------------------------------------------------------------

V1_HALTED: dict[str, Any] = {
    "schema_version": 1,
    "current": {
        "reason": "drawdown 16% >= 15%",
        "trigger": "drawdown",
        "since": START.isoformat(),
        "kill_switch": False,
        "by": "risk",
        "measure": 0.16,
        "threshold": 0.15,
    },
    "blocked": 7,
    "last_resume_at": "2026-11-24T15:00:00+00:00",
    "history": [
        {
            "kind": "halt",
            "at": START.isoformat(),
            "by": "risk",
            "reason": "drawdown 16% >= 15%",
            "trigger": "drawdown",
            "kill_switch": False,
            "measure": 0.16,
            "threshold": 0.15,
            "blocked": 0,
            "detail": "",
        }
    ]
    * 50,
}


def test_a_schema_1_file_still_loads_without_its_history(
    store: CountingStore, clock: FakeClock
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps(V1_HALTED))
    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock)
    m.restore()
    assert m.current == HaltRecord(
        "drawdown 16% >= 15%", HaltTrigger.DRAWDOWN, START, False, "risk", 0.16, 0.15
    )
    assert (m.summary() or {})["blocked"] == 0
    assert m.persisted is True
    assert store.writes == 0  # loading writes nothing
    # The next change writes schema 2, without the history.
    m.halt("kill", HaltTrigger.KILL_SWITCH, by="cli")
    assert on_disk(store) == {
        "schema_version": 2,
        "current": {**V1_HALTED["current"], "kill_switch": True},
        "last_resume_at": "2026-11-24T15:00:00+00:00",
    }


def test_a_schema_1_file_not_halted_loads_as_trading(
    store: CountingStore, clock: FakeClock
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps({**V1_HALTED, "current": None, "history": []}))
    m = HaltManager(store, resume_cooldown_s=COOLDOWN_S, clock=clock)
    m.restore()
    assert not m.is_halted
    # The last resume is kept: the next write carries it on.
    m.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert on_disk(store)["last_resume_at"] == "2026-11-24T15:00:00+00:00"


# -- write failures: fail-safe halts, durable resumes ---------------------------------------------


def test_halt_on_a_broken_disk_halts_in_memory_and_does_not_raise(
    manager: HaltManager,
    store: CountingStore,
    events: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    break_disk(store)
    with caplog.at_level(logging.CRITICAL, logger="gateway.safety.halt"):
        record = manager.halt("desk says stop", HaltTrigger.MANUAL, by="api:strategy")
    assert manager.is_halted
    assert manager.current == record
    assert manager.persisted is False
    summary = manager.summary()
    assert summary is not None
    assert summary["persisted"] is False
    assert events.kinds == ["halt"]
    assert events.events[0].summary == summary
    assert any(
        r.levelno == logging.CRITICAL and "NOT written" in r.getMessage() for r in caplog.records
    )


def test_retry_persist_writes_the_halt_once_the_disk_is_back(
    manager: HaltManager, store: CountingStore, clock: FakeClock
) -> None:
    break_disk(store)
    record = manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert manager.retry_persist() is False  # still broken
    assert manager.persisted is False
    repair_disk(store)
    assert manager.retry_persist() is True
    assert manager.persisted is True
    assert reopen(store, clock).current == record
    summary = manager.summary()
    assert summary is not None
    assert summary["persisted"] is True


def test_retry_persist_does_nothing_when_already_persisted(
    manager: HaltManager, store: CountingStore
) -> None:
    assert manager.retry_persist() is True  # not halted, nothing to write
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    assert manager.retry_persist() is True
    assert store.writes == 1


def test_kill_flag_written_by_a_later_change_after_a_failed_halt(
    manager: HaltManager, store: CountingStore, clock: FakeClock
) -> None:
    """A write that succeeds later carries the whole in-memory state, first halt included."""
    break_disk(store)
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    repair_disk(store)
    killed = manager.halt("kill", HaltTrigger.KILL_SWITCH, by="cli")
    assert manager.persisted is True
    assert reopen(store, clock).current == killed


def test_resume_on_a_broken_disk_stays_halted_and_raises(
    manager: HaltManager, store: CountingStore, clock: FakeClock, events: Recorder
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    manager.record_blocked("s1")
    clock.advance(COOLDOWN_S)
    break_disk(store)
    with pytest.raises(HaltStateWriteError, match="resume not written"):
        manager.resume(by="api:admin")
    assert manager.is_halted
    assert manager.persisted is False  # the file can no longer be vouched for
    assert (manager.summary() or {})["blocked"] == 1
    assert events.kinds == ["halt"]
    # Writes succeed again: the periodic retry rewrites the halt, and a resume then works.
    repair_disk(store)
    assert manager.retry_persist() is True
    assert reopen(store, clock).is_halted
    manager.resume(by="api:admin")
    assert not manager.is_halted
    assert manager.persisted is True
    assert events.kinds == ["halt", "resume"]
    assert events.events[-1].blocked == 1
    assert not reopen(store, clock).is_halted


def test_resume_works_once_the_disk_is_back_without_a_retry_first(
    manager: HaltManager, store: CountingStore, clock: FakeClock
) -> None:
    break_disk(store)
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    clock.advance(COOLDOWN_S)
    with pytest.raises(HaltStateWriteError):
        manager.resume(by="api:admin")
    repair_disk(store)
    manager.resume(by="api:admin")
    assert not manager.is_halted
    assert manager.persisted is True
    assert not reopen(store, clock).is_halted


def test_unreadable_state_on_a_broken_disk_starts_halted_without_raising(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Neither the old file can be read nor a new one written: HALTED, in memory."""
    state_dir = tmp_path / "state"
    state_dir.write_text("a file where the state directory should be")
    m = HaltManager(
        HaltStateStore(state_dir / "halt_state.json"), resume_cooldown_s=COOLDOWN_S, clock=clock
    )
    m.restore()
    assert m.is_halted
    assert m.current is not None
    assert m.current.trigger is HaltTrigger.STATE_UNREADABLE
    assert m.persisted is False


async def test_kill_switch_on_a_broken_disk_halts_and_still_cancels(
    manager: HaltManager, store: CountingStore
) -> None:
    broker = SimulatedBroker(initial_cash=100000, quotes={"AAPL": (199.95, 200.05)})
    await broker.connect()
    try:
        resting = await broker.submit(
            OrderRequest(
                client_order_id="rest-1",
                symbol="AAPL",
                side="buy",
                quantity=1,
                order_type="limit",
                limit_price=150,
            )
        )
        switch = KillSwitch(
            halt=manager,
            broker=broker,
            on_order=lambda order: None,
            open_orders=lambda: [],
            flatten_positions=False,
            cancel_retries=1,
        )
        break_disk(store)
        report = await switch.kill("fat finger", by="api:strategy")
        assert report.cancelled == [resting.broker_order_id]
        assert report.failed == {}
        assert await broker.open_orders() == []
        assert manager.current is not None
        assert manager.current.kill_switch is True
        assert manager.persisted is False
    finally:
        await broker.close()
