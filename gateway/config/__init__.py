"""Configuration: ``gateway.yaml`` (the service) and ``risk_management.yaml`` (risk, v2 schema).

Both load into frozen pydantic models that forbid unknown keys, so a typo is an error at start and
never a silent default. Relative paths in gateway.yaml (``state_dir``, ``risk_config``) resolve
against the directory of gateway.yaml, so the service behaves the same from any working directory.

The risk file of the replaced system (seed report, appendix B) loads unchanged; keys it lacks take
the defaults documented on each field.

    risk.py      risk_management.yaml: limits, emergency thresholds, pre-trade limits
    settings.py  gateway.yaml: the service and broker settings, and the effective GatewayConfig
    firm.py      the optional firm: section (several gateways on one PostgreSQL)
    loading.py   reading both files, every problem listed by key; the effective config as text
"""

from gateway.config.firm import FirmDsnMissing, FirmSettings
from gateway.config.loading import (
    DEFAULT_CONFIG_PATH,
    SECRET_ENV_VARS,
    ConfigError,
    default_config_path,
    effective_config_text,
    load_config,
    load_risk_config,
)
from gateway.config.risk import (
    DEFAULT_EMERGENCY_THRESHOLDS,
    EmergencySettings,
    PreTradeLimits,
    RiskConfig,
    RiskLimits,
)
from gateway.config.settings import (
    BrokerSettings,
    GatewayConfig,
    GatewaySettings,
    QuoteSettings,
    ScheduleSettings,
    SimulatedBrokerSettings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_EMERGENCY_THRESHOLDS",
    "SECRET_ENV_VARS",
    "BrokerSettings",
    "ConfigError",
    "EmergencySettings",
    "FirmDsnMissing",
    "FirmSettings",
    "GatewayConfig",
    "GatewaySettings",
    "PreTradeLimits",
    "QuoteSettings",
    "RiskConfig",
    "RiskLimits",
    "ScheduleSettings",
    "SimulatedBrokerSettings",
    "default_config_path",
    "effective_config_text",
    "load_config",
    "load_risk_config",
]
