"""The production halt path: RiskMonitor.evaluate() over a real Book, QuoteBook, Journal and
HaltManager halts on each emergency threshold, exactly at it and not a cent before, and latches
REDUCE_ONLY at each limit. Also holds `MonitorRig`, which the seed scenarios reuse.

Numbers are chosen so every measure is an exact Decimal: 1,000 AAPL and no cash is 100,000 of
equity at a mid of 100, so a mid of 95 is exactly a 5% daily loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import Account, Position, Quote
from gateway.config import GatewayConfig, RiskConfig
from gateway.ops.metrics import GatewayMetrics
from gateway.risk.book import Book
from gateway.risk.monitor import RiskMonitor
from gateway.risk.quotes import QuoteBook
from gateway.risk.state import EquityMarks, RiskState, trading_day, trigger_still_active
from gateway.safety.halt import (
    HaltEvent,
    HaltManager,
    HaltRecord,
    HaltStateStore,
    HaltTrigger,
    ResumeRefused,
)
from gateway.store.journal import Journal

COOLDOWN_S = 300.0
# 10:00 in New York: after the 09:25 trading-day reset, so the trading day is the 25th.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SYMBOL = "AAPL"
HALF_SPREAD = Decimal("0.01")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A halt listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[HaltEvent] = []

    def __call__(self, event: HaltEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def risk_config(**limits: Any) -> RiskConfig:
    return RiskConfig.model_validate({"risk_management": limits})


class MonitorRig:
    """A RiskMonitor wired as the engine wires it, holding `shares` AAPL and `cash`.

    `marks` (day-start equity, peak equity) are put in the journal for today before the
    monitor restores, as a restart the same trading day finds them; without them the monitor
    starts the day from the equity it sees.
    """

    def __init__(
        self,
        directory: Path,
        *,
        shares: int,
        mid: str,
        cash: str = "0",
        marks: tuple[str, str] | None = None,
        risk: RiskConfig | None = None,
    ) -> None:
        self.config = GatewayConfig(risk=risk or RiskConfig())
        self.clock = FakeClock()
        self.events = Recorder()
        self.journal = Journal(directory / "journal.sqlite3")
        self.halt = HaltManager(
            HaltStateStore(directory / "halt_state.json"),
            resume_cooldown_s=COOLDOWN_S,
            clock=self.clock,
            listeners=[self.events],
        )
        self.halt.restore()
        self.book = Book()
        self.book.load_account(Account(equity=0, cash=Decimal(cash), buying_power=0))
        self.book.load_positions([Position(symbol=SYMBOL, qty=shares, avg_price=Decimal(mid))])
        self.quotes = QuoteBook(self.config.gateway.quotes, clock=self.clock)
        self.move(mid)
        if marks is not None:
            today = trading_day(NOW, self.config.gateway.schedule)
            day_start, peak = (Decimal(m) for m in marks)
            self.journal.put("equity_marks", EquityMarks(today, day_start, peak).to_json())
        self.monitor = RiskMonitor(
            self.config,
            book=self.book,
            quotes=self.quotes,
            journal=self.journal,
            halt=self.halt,
            metrics=GatewayMetrics(process_metrics=False),
            clock=self.clock,
        )
        self.monitor.restore()

    def move(self, mid: str) -> None:
        """The market moves: a fresh quote whose mid is exactly `mid`."""
        m = Decimal(mid)
        self.quotes.update(
            Quote(symbol=SYMBOL, bid=m - HALF_SPREAD, ask=m + HALF_SPREAD, ts=self.clock())
        )

    def evaluate_at(self, mid: str) -> RiskState:
        self.move(mid)
        self.monitor.evaluate()
        return self.monitor.state

    def resume(self) -> None:
        """Resume as the service does: the trigger judged on the measures of now."""
        measures = self.monitor.measures()
        self.halt.resume(
            by="api:admin",
            trigger_active=lambda record: trigger_still_active(
                record.trigger.value, measures, self.config.risk
            ),
        )

    def close(self) -> None:
        self.journal.close()


def halt_of(rig: MonitorRig) -> tuple[HaltTrigger, float | None, float | None]:
    record = rig.halt.current
    assert record is not None, "expected a halt"
    return record.trigger, record.measure, record.threshold


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[list[MonitorRig]]:
    made: list[MonitorRig] = []
    yield made
    for rig in made:
        rig.close()


@pytest.fixture
def daily_loss_rig(tmp_path: Path, rigs: list[MonitorRig]) -> MonitorRig:
    """Day starts at 100,000 (1,000 AAPL at 100); the day-start is also the peak."""
    rig = MonitorRig(tmp_path, shares=1000, mid="100")
    rigs.append(rig)
    return rig


@pytest.fixture
def drawdown_rig(tmp_path: Path, rigs: list[MonitorRig]) -> MonitorRig:
    """Peak 100,000 from an earlier day; today started at 86,000 (1,000 AAPL at 86)."""
    rig = MonitorRig(tmp_path, shares=1000, mid="86", marks=("86000", "100000"))
    rigs.append(rig)
    return rig


@pytest.fixture
def heat_rig(tmp_path: Path, rigs: list[MonitorRig]) -> MonitorRig:
    """2,000 AAPL on 100,000 of borrowed cash, 20% stop: heat = 2 x 20% = 40% at a mid of 100.

    The day starts at a mid of 100.01 (equity 100,020, heat 39.996%).
    """
    rig = MonitorRig(
        tmp_path, shares=2000, mid="100.01", cash="-100000", risk=risk_config(stop_loss_percent=0.2)
    )
    rigs.append(rig)
    return rig


# -- one scenario per trigger, exactly at the threshold -------------------------------------------


def test_daily_loss_exactly_at_the_emergency_threshold_halts(daily_loss_rig: MonitorRig) -> None:
    rig = daily_loss_rig
    assert rig.evaluate_at("95.01") is RiskState.REDUCE_ONLY  # 4.99%: past the 2% limit only
    assert not rig.halt.is_halted
    assert rig.evaluate_at("95") is RiskState.HALTED  # exactly 5%
    assert halt_of(rig) == (HaltTrigger.DAILY_LOSS, 0.05, 0.05)
    record = rig.halt.current
    assert record is not None
    assert record.by == "risk"
    assert record.reason == "daily_loss 5.0000% >= emergency 5.00%"
    assert rig.events.kinds == ["halt"]


def test_drawdown_exactly_at_the_emergency_threshold_halts(drawdown_rig: MonitorRig) -> None:
    rig = drawdown_rig
    assert rig.evaluate_at("85.01") is RiskState.REDUCE_ONLY  # drawdown 14.99%, loss 1.15%
    assert not rig.halt.is_halted
    assert rig.evaluate_at("85") is RiskState.HALTED  # drawdown exactly 15%, loss 1.16%
    assert halt_of(rig) == (HaltTrigger.DRAWDOWN, 0.15, 0.15)


def test_portfolio_heat_exactly_at_the_emergency_threshold_halts(heat_rig: MonitorRig) -> None:
    rig = heat_rig
    assert rig.evaluate_at("100.01") is RiskState.ACTIVE  # heat 39.996%
    assert not rig.halt.is_halted
    assert rig.evaluate_at("100") is RiskState.HALTED  # heat exactly 40%
    assert halt_of(rig) == (HaltTrigger.PORTFOLIO_HEAT, 0.4, 0.4)


def test_configured_thresholds_are_the_ones_applied(tmp_path: Path, rigs: list[MonitorRig]) -> None:
    """A 7% daily-loss emergency in risk_management.yaml: 5% no longer halts, 7% does."""
    risk = RiskConfig.model_validate(
        {"emergency": {"kill_switch_triggers": [{"type": "daily_loss", "threshold": 0.07}]}}
    )
    rig = MonitorRig(tmp_path, shares=1000, mid="100", risk=risk)
    rigs.append(rig)
    assert rig.evaluate_at("93.01") is RiskState.REDUCE_ONLY
    assert rig.evaluate_at("93") is RiskState.HALTED
    assert halt_of(rig) == (HaltTrigger.DAILY_LOSS, 0.07, 0.07)


def test_a_halted_monitor_does_not_halt_again(daily_loss_rig: MonitorRig) -> None:
    rig = daily_loss_rig
    rig.evaluate_at("94")
    rig.evaluate_at("80")  # far worse: the halt in force keeps its first measure
    assert rig.events.kinds == ["halt"]
    assert halt_of(rig) == (HaltTrigger.DAILY_LOSS, 0.06, 0.05)


# -- limits: REDUCE_ONLY exactly at the limit -----------------------------------------------------


def test_daily_loss_limit_exactly_reached_latches_reduce_only(daily_loss_rig: MonitorRig) -> None:
    rig = daily_loss_rig
    assert rig.evaluate_at("98.01") is RiskState.ACTIVE  # 1.99%
    assert rig.evaluate_at("98") is RiskState.REDUCE_ONLY  # exactly 2%
    assert rig.evaluate_at("99") is RiskState.REDUCE_ONLY  # latched until the day resets
    transition = rig.journal.events("state_transition")
    assert [(e["trigger"], e["measure"], e["threshold"]) for e in transition] == [
        ("daily_loss", 0.02, 0.02)
    ]


def test_drawdown_limit_exactly_reached_latches_reduce_only(
    tmp_path: Path, rigs: list[MonitorRig]
) -> None:
    # Peak 100,000, today started at 91,000: drawdown 9% at the start, 10% at a mid of 90.
    rig = MonitorRig(tmp_path, shares=1000, mid="91", marks=("91000", "100000"))
    rigs.append(rig)
    assert rig.evaluate_at("90.01") is RiskState.ACTIVE  # drawdown 9.99%, loss 1.09%
    assert rig.evaluate_at("90") is RiskState.REDUCE_ONLY  # drawdown exactly 10%
    transition = rig.journal.events("state_transition")
    assert [(e["trigger"], e["measure"], e["threshold"]) for e in transition] == [
        ("drawdown", 0.1, 0.1)
    ]


# -- resume judged on the production measures -----------------------------------------------------


def test_resume_refused_while_drawdown_is_exactly_at_its_threshold(
    drawdown_rig: MonitorRig,
) -> None:
    rig = drawdown_rig
    rig.evaluate_at("85")
    rig.clock.advance(COOLDOWN_S)
    with pytest.raises(ResumeRefused) as refused:
        rig.resume()  # still exactly 15%: at the threshold counts as active
    assert refused.value.code == "trigger_active"
    assert "0.15 >= 0.15" in refused.value.message
    rig.move("85.01")  # 14.99%: recovered
    rig.resume()
    assert not rig.halt.is_halted
    assert rig.events.kinds == ["halt", "resume"]


def test_resume_refused_while_daily_loss_is_exactly_at_its_threshold(
    daily_loss_rig: MonitorRig,
) -> None:
    rig = daily_loss_rig
    rig.evaluate_at("95")
    rig.clock.advance(COOLDOWN_S)
    with pytest.raises(ResumeRefused, match="daily_loss trigger is still active"):
        rig.resume()
    rig.move("95.01")
    rig.resume()
    assert not rig.halt.is_halted


def test_resume_refused_while_heat_is_exactly_at_its_threshold(heat_rig: MonitorRig) -> None:
    rig = heat_rig
    rig.evaluate_at("100")
    rig.clock.advance(COOLDOWN_S)
    with pytest.raises(ResumeRefused, match="portfolio_heat trigger is still active"):
        rig.resume()
    rig.move("100.01")
    rig.resume()
    assert not rig.halt.is_halted


def test_halt_record_survives_a_restart_with_its_measure(
    daily_loss_rig: MonitorRig, tmp_path: Path
) -> None:
    daily_loss_rig.evaluate_at("95")
    restarted = HaltManager(
        HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=COOLDOWN_S
    )
    restarted.restore()
    assert restarted.current == daily_loss_rig.halt.current
    assert restarted.current == HaltRecord(
        reason="daily_loss 5.0000% >= emergency 5.00%",
        trigger=HaltTrigger.DAILY_LOSS,
        since=NOW,
        kill_switch=False,
        by="risk",
        measure=0.05,
        threshold=0.05,
    )
