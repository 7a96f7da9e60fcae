"""A RiskMonitor restarted the same trading day comes back with the persisted day-start mark and
the REDUCE_ONLY latch; one restarted after the reset starts a new day from the equity it sees."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from gateway.ops.metrics import GatewayMetrics
from gateway.risk.monitor import RiskMonitor
from gateway.risk.state import RiskState
from tests.unit.test_risk_state_monitor import MonitorRig


def restart(rig: MonitorRig) -> RiskMonitor:
    """A new monitor over the same journal, book and quotes, as a gateway restart builds it."""
    monitor = RiskMonitor(
        rig.config,
        book=rig.book,
        quotes=rig.quotes,
        journal=rig.journal,
        halt=rig.halt,
        metrics=GatewayMetrics(process_metrics=False),
        clock=rig.clock,
    )
    monitor.restore()
    return monitor


def test_a_restart_the_same_trading_day_keeps_the_day_start_and_the_latch(
    tmp_path: Path,
) -> None:
    rig = MonitorRig(tmp_path, shares=1000, mid="100")
    try:
        assert rig.evaluate_at("98") is RiskState.REDUCE_ONLY  # exactly the 2% limit
        rig.move("99")
        again = restart(rig)
        assert again.marks.day_start_equity == Decimal(100000)
        assert again.state is RiskState.REDUCE_ONLY
        assert again.reduce_only == "daily_loss 2.0000% >= limit 2.00%"
    finally:
        rig.close()


def test_a_restart_after_the_reset_starts_a_new_day(tmp_path: Path) -> None:
    rig = MonitorRig(tmp_path, shares=1000, mid="100")
    try:
        assert rig.evaluate_at("98") is RiskState.REDUCE_ONLY
        rig.clock.advance(timedelta(days=1).total_seconds())
        rig.move("99")
        again = restart(rig)
        assert again.marks.trading_day == rig.monitor.marks.trading_day + timedelta(days=1)
        assert again.marks.day_start_equity == Decimal(99000)
        assert again.marks.peak_equity == Decimal(100000)  # the peak carries over
        assert again.state is RiskState.ACTIVE
    finally:
        rig.close()
