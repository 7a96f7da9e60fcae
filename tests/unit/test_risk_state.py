"""The production emergency and limit rules (gateway/risk/state.py), each boundary pinned.

`emergency_breach`, `limit_breach` and `trigger_still_active` compare with >=: a measure exactly
at its threshold is a breach, one just below is not. Each test here fails if a >= becomes >, and
the "just below" ones fail if it loosens further.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import RiskConfig
from gateway.risk.state import (
    Breach,
    RiskMeasures,
    emergency_breach,
    limit_breach,
    trigger_still_active,
)

RISK = RiskConfig()  # the defaults equal config/risk_management.yaml
EMERGENCY = {
    "daily_loss": Decimal("0.05"),
    "drawdown": Decimal("0.15"),
    "portfolio_heat": Decimal("0.40"),
}
LIMITS = {"daily_loss": Decimal("0.02"), "drawdown": Decimal("0.10")}
TINY = Decimal("1e-12")
ZERO = Decimal(0)


def measures(
    *, daily_loss: Decimal = ZERO, drawdown: Decimal = ZERO, portfolio_heat: Decimal = ZERO
) -> RiskMeasures:
    equity = Decimal(100000)
    return RiskMeasures(equity, equity, equity, daily_loss, drawdown, portfolio_heat)


def only(kind: str, value: Decimal) -> RiskMeasures:
    return measures(**{kind: value})


def test_the_defaults_are_the_documented_thresholds() -> None:
    assert RISK.emergency.thresholds == EMERGENCY
    assert RISK.risk_management.max_daily_loss == LIMITS["daily_loss"]
    assert RISK.risk_management.max_total_drawdown == LIMITS["drawdown"]


# -- emergency_breach -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EMERGENCY))
def test_emergency_exactly_at_threshold_is_a_breach(kind: str) -> None:
    threshold = EMERGENCY[kind]
    assert emergency_breach(only(kind, threshold), RISK) == Breach(kind, threshold, threshold)


@pytest.mark.parametrize("kind", sorted(EMERGENCY))
def test_emergency_just_below_threshold_is_not(kind: str) -> None:
    assert emergency_breach(only(kind, EMERGENCY[kind] - TINY), RISK) is None


def test_emergency_thresholds_come_from_the_config() -> None:
    risk = RiskConfig.model_validate(
        {
            "emergency": {
                "kill_switch_triggers": [
                    {"type": "daily_loss", "threshold": 0.07},
                    {"type": "drawdown", "threshold": 0.2},
                    {"type": "portfolio_heat", "threshold": 0.5},
                ]
            }
        }
    )
    assert emergency_breach(measures(daily_loss=Decimal("0.0699")), risk) is None
    assert emergency_breach(measures(daily_loss=Decimal("0.07")), risk) is not None
    assert emergency_breach(measures(drawdown=Decimal("0.1999")), risk) is None
    assert emergency_breach(measures(drawdown=Decimal("0.2")), risk) is not None
    assert emergency_breach(measures(portfolio_heat=Decimal("0.4999")), risk) is None
    assert emergency_breach(measures(portfolio_heat=Decimal("0.5")), risk) is not None


def test_first_emergency_in_order_daily_loss_drawdown_heat() -> None:
    high = Decimal("0.9")
    everything = measures(daily_loss=high, drawdown=high, portfolio_heat=high)
    assert emergency_breach(everything, RISK) == Breach("daily_loss", high, EMERGENCY["daily_loss"])
    two = measures(drawdown=high, portfolio_heat=high)
    assert emergency_breach(two, RISK) == Breach("drawdown", high, EMERGENCY["drawdown"])


def test_soft_limits_are_not_emergencies() -> None:
    at_limits = measures(
        daily_loss=LIMITS["daily_loss"], drawdown=LIMITS["drawdown"], portfolio_heat=Decimal("0.25")
    )
    assert emergency_breach(at_limits, RISK) is None


fractions_below = {
    kind: st.decimals(min_value=0, max_value=threshold - TINY, places=13)
    for kind, threshold in EMERGENCY.items()
}


@given(
    daily_loss=fractions_below["daily_loss"],
    drawdown=fractions_below["drawdown"],
    portfolio_heat=fractions_below["portfolio_heat"],
)
def test_below_every_emergency_threshold_never_halts(
    daily_loss: Decimal, drawdown: Decimal, portfolio_heat: Decimal
) -> None:
    safe = measures(daily_loss=daily_loss, drawdown=drawdown, portfolio_heat=portfolio_heat)
    assert emergency_breach(safe, RISK) is None


@given(
    kind=st.sampled_from(sorted(EMERGENCY)),
    excess=st.decimals(min_value=0, max_value=10, places=6),
)
def test_at_or_past_any_emergency_threshold_halts(kind: str, excess: Decimal) -> None:
    value = EMERGENCY[kind] + excess
    assert emergency_breach(only(kind, value), RISK) == Breach(kind, value, EMERGENCY[kind])


# -- limit_breach ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_limit_exactly_reached_is_a_breach(kind: str) -> None:
    limit = LIMITS[kind]
    assert limit_breach(only(kind, limit), RISK) == Breach(kind, limit, limit)


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_limit_just_below_is_not(kind: str) -> None:
    assert limit_breach(only(kind, LIMITS[kind] - TINY), RISK) is None


def test_daily_loss_limit_comes_before_drawdown() -> None:
    both = measures(daily_loss=LIMITS["daily_loss"], drawdown=LIMITS["drawdown"])
    assert limit_breach(both, RISK) == Breach("daily_loss", LIMITS["daily_loss"], Decimal("0.02"))


def test_drawdown_limit_off_without_drawdown_protection() -> None:
    risk = RiskConfig.model_validate({"risk_management": {"enable_drawdown_protection": False}})
    assert limit_breach(only("drawdown", Decimal("0.14")), risk) is None
    assert limit_breach(only("daily_loss", LIMITS["daily_loss"]), risk) is not None


def test_heat_has_no_reduce_only_limit() -> None:
    assert limit_breach(only("portfolio_heat", Decimal("0.39")), RISK) is None


# -- trigger_still_active -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EMERGENCY))
def test_trigger_exactly_at_threshold_is_still_active(kind: str) -> None:
    assert trigger_still_active(kind, only(kind, EMERGENCY[kind]), RISK) is True


@pytest.mark.parametrize("kind", sorted(EMERGENCY))
def test_trigger_just_below_threshold_has_recovered(kind: str) -> None:
    assert trigger_still_active(kind, only(kind, EMERGENCY[kind] - TINY), RISK) is False


def test_trigger_looks_only_at_its_own_measure() -> None:
    high = Decimal("0.9")
    others = measures(drawdown=high, portfolio_heat=high)
    assert trigger_still_active("daily_loss", others, RISK) is False


@pytest.mark.parametrize("trigger", ["manual", "kill_switch", "technical_failure", "other"])
def test_triggers_without_a_measure_are_never_active(trigger: str) -> None:
    high = Decimal("0.9")
    assert not trigger_still_active(trigger, measures(daily_loss=high, drawdown=high), RISK)
