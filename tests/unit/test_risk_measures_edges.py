"""The risk measures and the trading day at their edges: an account whose marks are zero or
negative (an unfunded or margin-wiped account) measures no loss and never divides by zero, a
mark of exactly one is divided by, and the trading day turns over exactly at the reset time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

from gateway.config import GatewayConfig
from gateway.risk.state import EquityMarks, measure, trading_day

D = Decimal
DAY = date(2026, 11, 25)
STOP = D("0.03")
SCHEDULE = GatewayConfig().gateway.schedule  # reset 09:25 America/New_York


def marks(day_start: str, peak: str) -> EquityMarks:
    return EquityMarks(DAY, D(day_start), D(peak))


def test_an_account_with_zero_marks_measures_no_loss_and_full_heat() -> None:
    m = measure(equity=D(0), marks=marks("0", "0"), at_risk=D(0) * STOP)
    assert (m.daily_loss, m.drawdown, m.portfolio_heat) == (D(0), D(0), D(1))


def test_negative_marks_measure_no_loss_when_equity_recovers_to_zero() -> None:
    # Day start and peak -100 (a margin deficit), equity back to 0: no loss, no drawdown.
    m = measure(equity=D(0), marks=marks("-100", "-100"), at_risk=D(0) * STOP)
    assert (m.daily_loss, m.drawdown) == (D(0), D(0))
    assert m.peak_equity == D(0)


def test_marks_of_exactly_one_are_divided_by() -> None:
    m = measure(equity=D("0.5"), marks=marks("1", "1"), at_risk=D(0) * STOP)
    assert (m.daily_loss, m.drawdown) == (D("0.5"), D("0.5"))


def test_equity_of_exactly_one_is_divided_by_for_heat() -> None:
    m = measure(equity=D(1), marks=marks("1", "1"), at_risk=D(10) * STOP)
    assert m.portfolio_heat == D("0.3")


def test_the_trading_day_turns_over_exactly_at_the_reset() -> None:
    assert SCHEDULE.trading_day_reset == time(9, 25)
    at_reset = datetime(2026, 11, 25, 14, 25, 0, tzinfo=UTC)  # 09:25:00 in New York
    assert trading_day(at_reset, SCHEDULE) == date(2026, 11, 25)
    a_second_before = datetime(2026, 11, 25, 14, 24, 59, tzinfo=UTC)
    assert trading_day(a_second_before, SCHEDULE) == date(2026, 11, 24)


def test_the_measures_report_the_marks_they_were_taken_from() -> None:
    m = measure(equity=D(96000), marks=marks("100000", "120000"), at_risk=D(50000) * STOP)
    assert m.as_json() == {
        "equity": 96000.0,
        "day_start_equity": 100000.0,
        "peak_equity": 120000.0,
        "daily_loss": 0.04,
        "drawdown": 0.2,
        "portfolio_heat": 0.015625,
    }
