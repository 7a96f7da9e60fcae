"""Config: one source of truth, validated, the seed's risk file loads unchanged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import ConfigError, load_config, load_risk_config
from tests.conftest import ROOT, write_config

SEED_RISK = ROOT / "tests" / "fixtures" / "seed_risk_management.yaml"


def test_seed_risk_file_loads_unchanged_with_documented_defaults() -> None:
    risk = load_risk_config(SEED_RISK)
    limits = risk.risk_management
    assert limits.max_daily_loss == Decimal("0.02")
    assert limits.max_total_drawdown == Decimal("0.10")
    assert limits.max_portfolio_heat == Decimal("0.25")
    assert limits.max_single_position_risk == Decimal("0.02")
    assert limits.stop_loss_percent == Decimal("0.03")
    emergency = risk.emergency
    assert emergency.thresholds == {
        "drawdown": Decimal("0.15"),
        "daily_loss": Decimal("0.05"),
        "portfolio_heat": Decimal("0.40"),  # default: the seed file has no heat trigger
    }
    assert emergency.failure_threshold == 3
    assert emergency.resume_cooldown_s == 300
    assert emergency.kill_switch.flatten_positions is False
    pre = risk.pre_trade
    assert pre.max_order_notional == Decimal(1000000)
    assert pre.max_order_quantity == Decimal(100000)
    assert pre.price_collar == Decimal("0.05")
    assert pre.max_orders_per_second == 100


def test_shipped_configs_load() -> None:
    config = load_config(ROOT / "config" / "gateway.yaml")
    assert config.gateway.mode == "paper"
    assert config.gateway.broker == "simulated"
    assert config.gateway.api.port == 8787
    assert config.risk.risk_management.stop_loss_percent == Decimal("0.03")


def _problems(tmp_path: Path, gateway: dict | None = None, risk: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, gateway, risk))
    return info.value.problems


@pytest.mark.parametrize(
    ("risk", "key", "words"),
    [
        (
            {"risk_management": {"stop_loss_percent": 0.25}},
            "risk_management.stop_loss_percent",
            "at most 0.20",
        ),
        (
            {"risk_management": {"max_daily_loss": 0}},
            "risk_management.max_daily_loss",
            "between 0 and 1",
        ),
        (
            {"risk_management": {"max_portfolio_heat": 1.5}},
            "risk_management.max_portfolio_heat",
            "between 0 and 1",
        ),
        (
            {"risk_management": {"max_daily_loss": 0.05}},
            "risk_management.max_daily_loss",
            "below the emergency",
        ),
        (
            {"risk_management": {"max_total_drawdown": 0.15}},
            "risk_management.max_total_drawdown",
            "below the emergency",
        ),
        (
            {"risk_management": {"max_portfolio_heat": 0.40}},
            "risk_management.max_portfolio_heat",
            "below the emergency",
        ),
        ({"risk_management": {"stop_loss": 0.03}}, "risk_management.stop_loss", "Extra inputs"),
        ({"pre_trade": {"price_collar": -0.1}}, "pre_trade.price_collar", "between 0 and 1"),
        (
            {"risk_management": {"max_daily_loss": "nan"}},
            "risk_management.max_daily_loss",
            "finite",
        ),
    ],
)
def test_incoherent_risk_is_refused_naming_the_key(
    tmp_path: Path, risk: dict, key: str, words: str
) -> None:
    problems = _problems(tmp_path, risk=risk)
    assert any(key in p and words in p for p in problems), problems


def test_gateway_keys_are_checked(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        gateway={"gateway": {"mode": "live", "api": {"port": 70000}, "colour": 1}},
    )
    text = "\n".join(problems)
    assert "gateway.api.port" in text
    assert "gateway.colour" in text


def test_live_needs_explicit_opt_in(tmp_path: Path) -> None:
    problems = _problems(tmp_path, gateway={"gateway": {"mode": "live"}})
    assert any("allow_live" in p for p in problems)
    problems = _problems(tmp_path, gateway={"gateway": {"mode": "live", "allow_live": True}})
    assert any("simulated" in p for p in problems)


def test_check_config_prints_effective_config_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "very-secret-admin-token")
    path = write_config(tmp_path)
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stop_loss_percent: 0.03" in out
    assert "very-secret-admin-token" not in out
    assert "GATEWAY_ADMIN_TOKEN: '***'" in out


def test_check_config_exits_2_listing_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path, risk={"risk_management": {"stop_loss_percent": 0.25, "max_daily_loss": 0.06}}
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "stop_loss_percent" in err
    assert "max_daily_loss" in err
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", "--config", str(missing)]) == 2
