"""``gateway.yaml``: the service and broker settings, and the effective configuration."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from brokers.base import PositiveNum
from brokers.simulated.faults import Faults
from brokers.simulated.state import DEFAULT_FILE_NAME
from gateway.config.firm import FirmSettings
from gateway.config.risk import Fraction, RiskConfig, Section


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)


class QuoteSettings(Section):
    max_age_s: float = Field(default=5.0, gt=0, le=3600)
    max_spread_bps: float = Field(default=100.0, gt=0, le=10000)
    missing: Literal["reject", "conservative"] = "reject"
    conservative_multiplier: Decimal = Field(default=Decimal("1.10"), ge=1, le=10)
    # A quote stamped further ahead of our clock than this is quote_invalid (clock skew slack).
    max_future_s: float = Field(default=2.0, ge=0, le=60)


class ScheduleSettings(Section):
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


class AlertSettings(Section):
    webhook_url: str | None = None


class ReconciliationSettings(Section):
    """A broker/journal position difference worth more than this fraction of equity halts."""

    halt_tolerance: Fraction = Decimal("0.01")


class GatewaySettings(Section):
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


class SimulatedBrokerSettings(Section):
    initial_cash: PositiveNum = Decimal("100000")
    quotes: dict[str, tuple[PositiveNum, PositiveNum]] = Field(default_factory=dict)
    tick_s: float = Field(default=1.0, gt=0, le=3600)
    margin_multiplier: PositiveNum = Decimal(1)
    # The simulated account is a paper broker that kept running: its account, positions,
    # resting orders and id counter live in state_file (SQLite), by default
    # state_dir/sim_broker.sqlite3. persist: false keeps it in memory (throwaway runs).
    # A relative state_file resolves against gateway.yaml's directory.
    persist: bool = True
    state_file: Path | None = None
    faults: Faults = Faults()
    # At most this quantity of an order fills per quote or tick (the rest rests partially
    # filled): to rehearse partial fills. None fills every order whole.
    fill_quantity_per_tick: PositiveNum | None = None

    @model_validator(mode="after")
    def _state_file_needs_persist(self) -> SimulatedBrokerSettings:
        if not self.persist and self.state_file is not None:
            raise ValueError("state_file: not used with persist: false (remove one of them)")
        return self

    def state_path(self, state_dir: Path) -> Path | None:
        """Where the simulated account lives: state_file, else state_dir/sim_broker.sqlite3;
        None with persist: false."""
        if not self.persist:
            return None
        return self.state_file or state_dir / DEFAULT_FILE_NAME


class AlpacaSettings(Section):
    feed: Literal["iex", "sip"] = "iex"
    base_url: str | None = None
    data_url: str | None = None
    trading_stream_url: str | None = None
    data_stream_url: str | None = None


class IBSettings(Section):
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    client_id: int = Field(default=17, ge=0)
    account: str | None = None
    gateway: bool = True
    allow_delayed_data: bool = False


class BrokerSettings(Section):
    simulated: SimulatedBrokerSettings = SimulatedBrokerSettings()
    alpaca: AlpacaSettings = AlpacaSettings()
    ib: IBSettings = IBSettings()


class GatewayConfig(Section):
    """The effective configuration: gateway.yaml with its risk file, paths resolved."""

    gateway: GatewaySettings = GatewaySettings()
    brokers: BrokerSettings = BrokerSettings()
    risk: RiskConfig = RiskConfig()
    # Several gateways on one PostgreSQL (gateway.firm); None: the embedded single host.
    firm: FirmSettings | None = None
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
