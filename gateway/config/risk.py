"""``risk_management.yaml``: the single source of truth for every risk number (schema v2)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from brokers.base import Num, PositiveNum

MAX_STOP_LOSS = Decimal("0.20")


def _open_fraction(value: Decimal) -> Decimal:
    if not Decimal(0) < value < Decimal(1):
        raise ValueError(f"must be a fraction strictly between 0 and 1 (got {value})")
    return value


Fraction = Annotated[Num, AfterValidator(_open_fraction)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- risk_management.yaml -------------------------------------------------------------------


class RiskLimits(Section):
    """Limits: crossing one means REDUCE_ONLY (loss, drawdown) or a rejected order (the rest)."""

    max_daily_loss: Fraction = Decimal("0.02")
    max_total_drawdown: Fraction = Decimal("0.10")
    max_portfolio_heat: Fraction = Decimal("0.25")
    max_single_position_risk: Fraction = Decimal("0.02")
    stop_loss_percent: Fraction = Decimal("0.03")
    enable_drawdown_protection: bool = True
    require_positive_expectancy: bool = False
    # none: stops only where a signal asks; auto: a signal that opens or grows a position
    # without stop_loss_price gets one at stop_loss_percent from its entry; required: such a
    # signal is rejected (stop_loss_required).
    protective_stop: Literal["none", "auto", "required"] = "none"

    @field_validator("stop_loss_percent")
    @classmethod
    def _stop_loss_sane(cls, value: Decimal) -> Decimal:
        # The replaced system once ran with 0.25 by mistake: anything above 20% is a typo.
        if value > MAX_STOP_LOSS:
            raise ValueError(f"must be at most {MAX_STOP_LOSS} (got {value})")
        return value


EmergencyTriggerType = Literal["drawdown", "daily_loss", "portfolio_heat", "manual"]


class KillSwitchTrigger(Section):
    type: EmergencyTriggerType
    threshold: Fraction | None = None

    @model_validator(mode="after")
    def _threshold_matches_type(self) -> KillSwitchTrigger:
        if self.type != "manual" and self.threshold is None:
            raise ValueError(f"threshold: required for a {self.type} trigger")
        if self.type == "manual" and self.threshold is not None:
            raise ValueError("threshold: a manual trigger has none")
        return self


class PanicMode(Section):
    enabled: bool = True
    triggers: list[str] = Field(default_factory=list)
    action: Literal["halt_trading"] = "halt_trading"


class KillSwitchOptions(Section):
    flatten_positions: bool = False
    cancel_retries: int = Field(default=3, ge=0, le=20)


DEFAULT_EMERGENCY_THRESHOLDS: dict[str, Decimal] = {
    "daily_loss": Decimal("0.05"),
    "drawdown": Decimal("0.15"),
    "portfolio_heat": Decimal("0.40"),
}


class EmergencySettings(Section):
    """Emergency thresholds halt the gateway. Missing triggers take DEFAULT_EMERGENCY_THRESHOLDS
    (the seed's file has no portfolio_heat trigger: it gets 0.40)."""

    enable_kill_switch: bool = True
    kill_switch_triggers: list[KillSwitchTrigger] = Field(default_factory=list)
    panic_mode: PanicMode = PanicMode()
    kill_switch: KillSwitchOptions = KillSwitchOptions()
    failure_threshold: int = Field(default=3, ge=1, le=1000)
    resume_cooldown_s: float = Field(default=300.0, ge=0, le=86400)

    @field_validator("kill_switch_triggers")
    @classmethod
    def _one_per_type(cls, triggers: list[KillSwitchTrigger]) -> list[KillSwitchTrigger]:
        seen: set[str] = set()
        for trigger in triggers:
            if trigger.type in seen:
                raise ValueError(f"{trigger.type} appears twice")
            seen.add(trigger.type)
        return triggers

    def threshold(self, kind: str) -> Decimal:
        for trigger in self.kill_switch_triggers:
            if trigger.type == kind and trigger.threshold is not None:
                return trigger.threshold
        return DEFAULT_EMERGENCY_THRESHOLDS[kind]

    @property
    def thresholds(self) -> dict[str, Decimal]:
        return {kind: self.threshold(kind) for kind in DEFAULT_EMERGENCY_THRESHOLDS}


class PreTradeLimits(Section):
    max_order_notional: PositiveNum = Decimal("1000000")
    max_order_quantity: PositiveNum = Decimal("100000")
    price_collar: Fraction = Decimal("0.05")
    max_orders_per_second: int = Field(default=100, ge=1, le=1_000_000)
    # A sell that would take a position below zero (open and in-flight sells counted) is
    # refused with short_not_allowed unless this is true.
    allow_short: bool = False


class RiskConfig(Section):
    version: str = "2.0"
    risk_management: RiskLimits = RiskLimits()
    emergency: EmergencySettings = EmergencySettings()
    pre_trade: PreTradeLimits = PreTradeLimits()

    @model_validator(mode="after")
    def _limits_below_emergency(self) -> RiskConfig:
        problems = coherence_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(problems))
        return self


_LIMIT_PAIRS = (
    ("max_daily_loss", "daily_loss"),
    ("max_total_drawdown", "drawdown"),
    ("max_portfolio_heat", "portfolio_heat"),
)


def coherence_problems(raw: Mapping[str, Any]) -> list[str]:
    """Each limit must stay below its emergency threshold. Works on raw data too, so a file with
    other errors still gets these reported (values that are not numbers are skipped)."""
    limits = raw.get("risk_management") or {}
    emergency = raw.get("emergency") or {}
    thresholds = dict(DEFAULT_EMERGENCY_THRESHOLDS)
    for trigger in emergency.get("kill_switch_triggers") or []:
        if isinstance(trigger, Mapping) and trigger.get("threshold") is not None:
            with contextlib.suppress(Exception):
                thresholds[str(trigger.get("type"))] = Decimal(str(trigger["threshold"]))
    problems = []
    defaults = RiskLimits()
    for key, kind in _LIMIT_PAIRS:
        try:
            value = Decimal(str(limits.get(key, getattr(defaults, key))))
        except Exception:
            continue
        if value.is_finite() and value >= thresholds[kind]:
            problems.append(
                f"risk_management.{key}: {value} must be below the emergency {kind} "
                f"threshold {thresholds[kind]}"
            )
    return problems
