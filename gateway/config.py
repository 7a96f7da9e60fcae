"""Configuration: ``gateway.yaml`` (the service) and ``risk_management.yaml`` (risk, v2 schema).

Both load into frozen pydantic models that forbid unknown keys, so a typo is an error at start and
never a silent default. Relative paths in gateway.yaml (``state_dir``, ``risk_config``) resolve
against the directory of gateway.yaml, so the service behaves the same from any working directory.

The risk file of the replaced system (seed report, appendix B) loads unchanged; keys it lacks take
the defaults documented on each field below.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from brokers.base import Num, PositiveNum

DEFAULT_CONFIG_PATH = Path("config/gateway.yaml")
MAX_STOP_LOSS = Decimal("0.20")


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` names each key and the reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _open_fraction(value: Decimal) -> Decimal:
    if not Decimal(0) < value < Decimal(1):
        raise ValueError(f"must be a fraction strictly between 0 and 1 (got {value})")
    return value


Fraction = Annotated[Num, AfterValidator(_open_fraction)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- risk_management.yaml -------------------------------------------------------------------


class RiskLimits(_Section):
    """Limits: crossing one means REDUCE_ONLY (loss, drawdown) or a rejected order (the rest)."""

    max_daily_loss: Fraction = Decimal("0.02")
    max_total_drawdown: Fraction = Decimal("0.10")
    max_portfolio_heat: Fraction = Decimal("0.25")
    max_single_position_risk: Fraction = Decimal("0.02")
    stop_loss_percent: Fraction = Decimal("0.03")
    enable_drawdown_protection: bool = True
    require_positive_expectancy: bool = False

    @field_validator("stop_loss_percent")
    @classmethod
    def _stop_loss_sane(cls, value: Decimal) -> Decimal:
        # The replaced system once ran with 0.25 by mistake: anything above 20% is a typo.
        if value > MAX_STOP_LOSS:
            raise ValueError(f"must be at most {MAX_STOP_LOSS} (got {value})")
        return value


EmergencyTriggerType = Literal["drawdown", "daily_loss", "portfolio_heat", "manual"]


class KillSwitchTrigger(_Section):
    type: EmergencyTriggerType
    threshold: Fraction | None = None

    @model_validator(mode="after")
    def _threshold_matches_type(self) -> KillSwitchTrigger:
        if self.type != "manual" and self.threshold is None:
            raise ValueError(f"threshold: required for a {self.type} trigger")
        if self.type == "manual" and self.threshold is not None:
            raise ValueError("threshold: a manual trigger has none")
        return self


class PanicMode(_Section):
    enabled: bool = True
    triggers: list[str] = Field(default_factory=list)
    action: Literal["halt_trading"] = "halt_trading"


class KillSwitchOptions(_Section):
    flatten_positions: bool = False
    cancel_retries: int = Field(default=3, ge=0, le=20)


DEFAULT_EMERGENCY_THRESHOLDS: dict[str, Decimal] = {
    "daily_loss": Decimal("0.05"),
    "drawdown": Decimal("0.15"),
    "portfolio_heat": Decimal("0.40"),
}


class EmergencySettings(_Section):
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


class PreTradeLimits(_Section):
    max_order_notional: PositiveNum = Decimal("1000000")
    max_order_quantity: PositiveNum = Decimal("100000")
    price_collar: Fraction = Decimal("0.05")
    max_orders_per_second: int = Field(default=100, ge=1, le=1_000_000)


class RiskConfig(_Section):
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


# --- gateway.yaml -----------------------------------------------------------------------------


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)


class QuoteSettings(_Section):
    max_age_s: float = Field(default=5.0, gt=0, le=3600)
    max_spread_bps: float = Field(default=100.0, gt=0, le=10000)
    missing: Literal["reject", "conservative"] = "reject"
    conservative_multiplier: Decimal = Field(default=Decimal("1.10"), ge=1, le=10)


class ScheduleSettings(_Section):
    risk_sweep_s: float = Field(default=5.0, gt=0, le=3600)
    reconcile_s: float = Field(default=60.0, gt=0, le=86400)
    trading_day_reset: time = time(9, 25)
    timezone: str = "America/New_York"
    job_failure_threshold: int = Field(default=3, ge=1, le=100)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class AlertSettings(_Section):
    webhook_url: str | None = None


class ReconciliationSettings(_Section):
    """A broker/journal position difference worth more than this fraction of equity halts."""

    halt_tolerance: Fraction = Decimal("0.01")


class GatewaySettings(_Section):
    mode: Literal["paper", "live"] = "paper"
    allow_live: bool = False
    broker: Literal["simulated", "alpaca", "ib"] = "simulated"
    state_dir: Path = Path("../state")
    risk_config: Path = Path("risk_management.yaml")
    durability: Literal["process", "power"] = "process"
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    cancel_on_shutdown: bool = False
    api: ApiSettings = ApiSettings()
    quotes: QuoteSettings = QuoteSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    alerts: AlertSettings = AlertSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()


class SimulatedBrokerSettings(_Section):
    initial_cash: PositiveNum = Decimal("100000")
    quotes: dict[str, tuple[PositiveNum, PositiveNum]] = Field(default_factory=dict)
    tick_s: float = Field(default=1.0, gt=0, le=3600)
    margin_multiplier: PositiveNum = Decimal(1)
    # With a state file the simulated market survives a gateway crash (staging drills, crash
    # tests): it plays the broker that kept running. Relative to gateway.yaml's directory.
    state_file: Path | None = None


class AlpacaSettings(_Section):
    feed: Literal["iex", "sip"] = "iex"
    base_url: str | None = None
    data_url: str | None = None
    trading_stream_url: str | None = None
    data_stream_url: str | None = None


class IBSettings(_Section):
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    client_id: int = Field(default=17, ge=0)
    account: str | None = None
    gateway: bool = True
    allow_delayed_data: bool = False


class BrokerSettings(_Section):
    simulated: SimulatedBrokerSettings = SimulatedBrokerSettings()
    alpaca: AlpacaSettings = AlpacaSettings()
    ib: IBSettings = IBSettings()


class GatewayConfig(_Section):
    """The effective configuration: gateway.yaml with its risk file, paths resolved."""

    gateway: GatewaySettings = GatewaySettings()
    brokers: BrokerSettings = BrokerSettings()
    risk: RiskConfig = RiskConfig()
    source: Path | None = None

    @model_validator(mode="after")
    def _live_needs_opt_in(self) -> GatewayConfig:
        if self.gateway.mode == "live":
            if not self.gateway.allow_live:
                raise ValueError("gateway.mode: live needs gateway.allow_live: true")
            if self.gateway.broker == "simulated":
                raise ValueError("gateway.mode: live cannot use the simulated broker")
        return self

    def with_overrides(
        self, *, host: str | None = None, port: int | None = None, state_dir: Path | None = None
    ) -> GatewayConfig:
        api = self.gateway.api.model_copy(
            update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        )
        update: dict[str, Any] = {"api": api}
        if state_dir is not None:
            update["state_dir"] = state_dir.resolve()
        return self.model_copy(update={"gateway": self.gateway.model_copy(update=update)})


def _format_errors(prefix: str, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {message}" if key else message)
    return problems


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path}: must be a mapping of keys at the top level"])
    return data


def load_risk_config(path: Path) -> RiskConfig:
    data = _read_yaml(path)
    try:
        return RiskConfig.model_validate(data)
    except ValidationError as exc:
        problems = _format_errors("", exc)
        problems += [p for p in coherence_problems(data) if p not in problems]
        raise ConfigError([f"{path}: {p}" for p in problems]) from exc


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None = None) -> GatewayConfig:
    """Load gateway.yaml and the risk file it names; raise ConfigError listing every problem."""
    path = (path or default_config_path()).resolve()
    data = dict(_read_yaml(path))
    unknown = sorted(set(data) - {"gateway", "brokers"})
    problems = [f"{key}: unknown key" for key in unknown]
    base = path.parent
    gateway_raw = data.get("gateway") or {}
    try:
        settings = GatewaySettings.model_validate(gateway_raw)
    except ValidationError as exc:
        problems.extend(_format_errors("gateway", exc))
        settings = None
    try:
        brokers = BrokerSettings.model_validate(data.get("brokers") or {})
    except ValidationError as exc:
        problems.extend(_format_errors("brokers", exc))
        brokers = None
    if brokers is not None and brokers.simulated.state_file is not None:
        sim_state = brokers.simulated.state_file
        sim_state = sim_state if sim_state.is_absolute() else (base / sim_state).resolve()
        brokers = brokers.model_copy(
            update={"simulated": brokers.simulated.model_copy(update={"state_file": sim_state})}
        )
    risk: RiskConfig | None = None
    if settings is not None:
        risk_path = settings.risk_config
        risk_path = risk_path if risk_path.is_absolute() else (base / risk_path)
        try:
            risk = load_risk_config(risk_path.resolve())
        except ConfigError as exc:
            problems.extend(exc.problems)
        state_dir = settings.state_dir
        state_dir = state_dir if state_dir.is_absolute() else (base / state_dir)
        settings = settings.model_copy(
            update={"state_dir": state_dir.resolve(), "risk_config": risk_path.resolve()}
        )
    if problems or settings is None or brokers is None or risk is None:
        raise ConfigError(problems)
    try:
        return GatewayConfig(gateway=settings, brokers=brokers, risk=risk, source=path)
    except ValidationError as exc:
        raise ConfigError(_format_errors("", exc)) from exc


SECRET_ENV_VARS = (
    "GATEWAY_TOKEN",
    "GATEWAY_ADMIN_TOKEN",
    "GATEWAY_RESUME_AUTH_CODE",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
)


def effective_config_text(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> str:
    """The effective config as YAML, with the secrets the environment provides shown masked."""
    env = os.environ if environ is None else environ
    data = config.model_dump(mode="json", exclude={"source"})
    data["secrets"] = {name: ("***" if env.get(name) else "(not set)") for name in SECRET_ENV_VARS}
    url = data["gateway"]["alerts"].get("webhook_url")
    if url:
        # Webhook URLs often carry a token in their path: show only the host.
        data["gateway"]["alerts"]["webhook_url"] = url.split("/", 3)[:3] and (
            "/".join(url.split("/", 3)[:3]) + "/***"
        )
    return yaml.safe_dump(data, sort_keys=False)


__all__ = [
    "DEFAULT_EMERGENCY_THRESHOLDS",
    "ConfigError",
    "GatewayConfig",
    "RiskConfig",
    "effective_config_text",
    "load_config",
    "load_risk_config",
]
