"""Reading gateway.yaml and its risk file: every problem listed by key, paths resolved."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.firm import FirmSettings
from gateway.config.risk import RiskConfig, coherence_problems
from gateway.config.settings import BrokerSettings, GatewayConfig, GatewaySettings

DEFAULT_CONFIG_PATH = Path("config/gateway.yaml")


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` names each key and the reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


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
    unknown = sorted(set(data) - {"gateway", "brokers", "firm"})
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
    firm, firm_problems = _load_firm(data)
    problems.extend(firm_problems)
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
        return GatewayConfig(gateway=settings, brokers=brokers, risk=risk, firm=firm, source=path)
    except ValidationError as exc:
        raise ConfigError(_format_errors("", exc)) from exc


def _load_firm(data: Mapping[str, Any]) -> tuple[FirmSettings | None, list[str]]:
    """The optional firm section: absent is the single host; present, it must be whole."""
    if "firm" not in data:
        return None, []
    raw = data["firm"]
    if not isinstance(raw, Mapping):
        return None, ["firm: must be a mapping (dsn_env, gateway_id, ...)"]
    try:
        return FirmSettings.model_validate(raw), []
    except ValidationError as exc:
        return None, _format_errors("firm", exc)


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
    names = list(SECRET_ENV_VARS)
    if config.firm is not None:
        names.append(config.firm.dsn_env)  # the firm's DSN carries its password
    data["secrets"] = {name: ("***" if env.get(name) else "(not set)") for name in names}
    url = data["gateway"]["alerts"].get("webhook_url")
    if url:
        # Webhook URLs often carry a token in their path: show only the host.
        data["gateway"]["alerts"]["webhook_url"] = url.split("/", 3)[:3] and (
            "/".join(url.split("/", 3)[:3]) + "/***"
        )
    return yaml.safe_dump(data, sort_keys=False)
