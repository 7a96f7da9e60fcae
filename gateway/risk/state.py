"""Risk measures and the graduated risk state (ACTIVE -> REDUCE_ONLY; HALTED is the halt manager's).

Measures are exact Decimals: equity, the equity at the start of the trading day, the peak equity,
daily loss and drawdown as fractions of those, and portfolio heat. A limit breach (daily loss or
drawdown at or above its limit) latches REDUCE_ONLY until the next trading-day reset: a loss limit
that lets trading resume the moment a quote ticks back is not a limit. Emergency thresholds are the
halt manager's business; ``emergency_breach`` names the first one crossed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import RiskConfig, ScheduleSettings

ZERO = Decimal(0)


class RiskState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class RiskMeasures:
    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    daily_loss: Decimal
    drawdown: Decimal
    portfolio_heat: Decimal

    def as_json(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(slots=True)
class EquityMarks:
    """Persisted: the day-start and peak equity of the current trading day."""

    trading_day: date
    day_start_equity: Decimal
    peak_equity: Decimal

    def to_json(self) -> dict[str, str]:
        return {
            "trading_day": self.trading_day.isoformat(),
            "day_start_equity": str(self.day_start_equity),
            "peak_equity": str(self.peak_equity),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EquityMarks:
        return cls(
            trading_day=date.fromisoformat(data["trading_day"]),
            day_start_equity=Decimal(data["day_start_equity"]),
            peak_equity=Decimal(data["peak_equity"]),
        )


def trading_day(now: datetime, schedule: ScheduleSettings) -> date:
    """The trading day ``now`` belongs to: it starts at ``trading_day_reset`` local time."""
    local = now.astimezone(ZoneInfo(schedule.timezone))
    reset = schedule.trading_day_reset
    day = local.date()
    if (local.hour, local.minute, local.second) < (reset.hour, reset.minute, reset.second):
        day -= timedelta(days=1)
    return day


def measure(*, equity: Decimal, marks: EquityMarks, at_risk: Decimal) -> RiskMeasures:
    """The risk measures; heat is the money at risk (``Book.at_risk``) over equity."""
    day_start = marks.day_start_equity
    peak = max(marks.peak_equity, equity)
    daily_loss = max((day_start - equity) / day_start, ZERO) if day_start > 0 else ZERO
    drawdown = max((peak - equity) / peak, ZERO) if peak > 0 else ZERO
    heat = at_risk / equity if equity > 0 else Decimal(1)
    return RiskMeasures(equity, day_start, peak, daily_loss, drawdown, heat)


@dataclass(frozen=True, slots=True)
class Breach:
    trigger: str  # daily_loss | drawdown | portfolio_heat
    measure: Decimal
    threshold: Decimal

    def describe(self, level: str) -> str:
        return f"{self.trigger} {self.measure:.4%} >= {level} {self.threshold:.2%}"


def emergency_breach(measures: RiskMeasures, risk: RiskConfig) -> Breach | None:
    values = {
        "daily_loss": measures.daily_loss,
        "drawdown": measures.drawdown,
        "portfolio_heat": measures.portfolio_heat,
    }
    for kind, threshold in risk.emergency.thresholds.items():
        if values[kind] >= threshold:
            return Breach(kind, values[kind], threshold)
    return None


def limit_breach(measures: RiskMeasures, risk: RiskConfig) -> Breach | None:
    limits = risk.risk_management
    if measures.daily_loss >= limits.max_daily_loss:
        return Breach("daily_loss", measures.daily_loss, limits.max_daily_loss)
    if limits.enable_drawdown_protection and measures.drawdown >= limits.max_total_drawdown:
        return Breach("drawdown", measures.drawdown, limits.max_total_drawdown)
    return None


def trigger_still_active(trigger: str, measures: RiskMeasures, risk: RiskConfig) -> bool:
    """True while the measure that tripped a halt is still at or past its emergency threshold."""
    values = {
        "daily_loss": measures.daily_loss,
        "drawdown": measures.drawdown,
        "portfolio_heat": measures.portfolio_heat,
    }
    if trigger not in values:
        return False
    return values[trigger] >= risk.emergency.threshold(trigger)
