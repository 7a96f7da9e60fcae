"""The REDUCE_ONLY latch and the equity marks through the monitor's whole day: the latch is
written to the journal, told to the operator (log, metrics), cleared by the trading-day reset even
when the reset job runs while the clock is still in the same trading day, and a new equity peak is
carried into the measures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.ops.metrics import GatewayMetrics
from gateway.risk.monitor import RiskMonitor
from gateway.risk.state import RiskState
from tests.unit.test_risk_monitor_restart import restart
from tests.unit.test_risk_state_monitor import MonitorRig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[MonitorRig]:
    made = MonitorRig(tmp_path, shares=1000, mid="100")  # 100,000 of equity, all AAPL
    yield made
    made.close()


def state_gauge(rig: MonitorRig) -> dict[str, float]:
    gauge = rig.monitor._metrics.state_current
    return {
        sample.labels["state"]: sample.value
        for metric in gauge.collect()
        for sample in metric.samples
        if sample.name.endswith("_current")
    }


def test_the_latch_is_logged_with_its_reason(
    rig: MonitorRig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.risk"):
        rig.evaluate_at("98")
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.risk"]
    assert len(warnings) == 1
    assert "daily_loss 2.0000% >= limit 2.00%" in warnings[0]
    assert "REDUCE_ONLY" in warnings[0]


def test_the_state_gauge_follows_the_latch_and_the_halt(rig: MonitorRig) -> None:
    rig.evaluate_at("98")
    assert state_gauge(rig) == {"active": 0, "reduce_only": 1, "halted": 0}
    rig.evaluate_at("95")
    assert state_gauge(rig) == {"active": 0, "reduce_only": 0, "halted": 1}


def test_the_reset_job_clears_the_latch_within_the_same_trading_day(rig: MonitorRig) -> None:
    # The job may fire a moment before the clock's trading day turns: the reset still happens.
    assert rig.evaluate_at("98") is RiskState.REDUCE_ONLY
    day = rig.monitor.marks.trading_day
    rig.move("99")
    rig.monitor.reset_trading_day()
    assert rig.monitor.state is RiskState.ACTIVE
    assert rig.monitor.marks.trading_day == day
    assert rig.monitor.marks.day_start_equity == Decimal(99000)
    assert rig.monitor.marks.peak_equity == Decimal(100000)
    resets = rig.journal.events("trading_day_reset")
    assert {"trading_day", "day_start_equity", "peak_equity"} <= set(resets[0])
    days = [(e["trading_day"], Decimal(e["day_start_equity"])) for e in resets]
    assert sorted(days) == [(day.isoformat(), Decimal(99000)), (day.isoformat(), Decimal(100000))]
    assert restart(rig).state is RiskState.ACTIVE  # the cleared latch is what the journal holds


def test_a_new_day_clears_the_persisted_latch_for_later_restarts(rig: MonitorRig) -> None:
    assert rig.evaluate_at("98") is RiskState.REDUCE_ONLY
    rig.clock.advance(timedelta(days=1).total_seconds())
    rig.move("98")
    assert restart(rig).state is RiskState.ACTIVE  # the next day starts from 98,000
    assert restart(rig).state is RiskState.ACTIVE  # and a second restart that day agrees


def test_a_new_equity_peak_is_carried_into_the_measures(rig: MonitorRig) -> None:
    rig.evaluate_at("110")
    assert rig.monitor.marks.peak_equity == Decimal(110000)
    rig.move("99")
    measures = rig.monitor.evaluate()
    assert measures.peak_equity == Decimal(110000)
    assert measures.drawdown == Decimal("0.1")
    assert rig.monitor.state is RiskState.REDUCE_ONLY  # 10% drawdown from the new peak


def test_the_scheduled_reset_keeps_the_peak_so_drawdown_spans_days(rig: MonitorRig) -> None:
    # Drawdown is measured from the all-time peak: the daily reset must not forget it.
    rig.evaluate_at("100")
    rig.clock.advance(timedelta(days=1).total_seconds())
    rig.move("97")
    rig.monitor.reset_trading_day()
    measures = rig.monitor.measures()
    assert (measures.day_start_equity, measures.peak_equity) == (Decimal(97000), Decimal(100000))
    assert measures.drawdown == Decimal("0.03")
    assert measures.daily_loss == Decimal(0)


def test_the_latch_is_journaled_as_a_transition_from_active_to_reduce_only(
    rig: MonitorRig,
) -> None:
    rig.evaluate_at("98")
    (event,) = rig.journal.events("state_transition")
    assert {k: event[k] for k in ("from", "to", "trigger", "measure", "threshold")} == {
        "from": "active",
        "to": "reduce_only",
        "trigger": "daily_loss",
        "measure": 0.02,
        "threshold": 0.02,
    }


def test_a_monitor_not_yet_restored_is_not_started_and_not_reduce_only(rig: MonitorRig) -> None:
    # status() asks `started` before reading measures; admission reads `reduce_only is None`.
    fresh = RiskMonitor(
        rig.config,
        book=rig.book,
        quotes=rig.quotes,
        journal=rig.journal,
        halt=rig.halt,
        metrics=GatewayMetrics(process_metrics=False),
        clock=rig.clock,
    )
    assert fresh.started is False
    assert fresh.reduce_only is None
    assert fresh.state is RiskState.ACTIVE
    fresh.restore()
    assert fresh.started is True
