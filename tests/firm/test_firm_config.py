"""The firm: section and the firm control's wire form (no PostgreSQL needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import ConfigError, FirmDsnMissing, effective_config_text, load_config
from gateway.firm.control import FirmControl
from tests.conftest import write_config


def load(tmp_path: Path, firm: object) -> object:
    return load_config(write_config(tmp_path, {"firm": firm}))


def test_defaults_and_the_account(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"firm": {"gateway_id": "ib-1"}}))
    firm = config.firm
    assert firm is not None
    assert (firm.dsn_env, firm.on_disconnect, firm.grace_s) == ("GATEWAY_FIRM_DSN", "halt", 5.0)
    assert firm.account_name == "ib-1" and firm.max_gross_exposure is None
    assert load_config(write_config(tmp_path / "none", {})).firm is None


@pytest.mark.parametrize(
    ("firm", "problem"),
    [
        ({"gateway_id": "a", "grace": 1}, "firm.grace: Extra inputs are not permitted"),
        ({}, "firm.gateway_id: Field required"),
        ({"gateway_id": "a b"}, "firm.gateway_id: String should match pattern"),
        ({"gateway_id": "a", "grace_s": 0}, "firm.grace_s: Input should be greater than 0"),
        ({"gateway_id": "a", "on_disconnect": "pray"}, "firm.on_disconnect: Input should be"),
        ({"gateway_id": "a", "max_gross_exposure": -5}, "firm.max_gross_exposure"),
        ({"gateway_id": "a", "dsn_env": "has-dash"}, "firm.dsn_env: String should match"),
        ("yes", "firm: must be a mapping"),
        (None, "firm: must be a mapping"),
    ],
)
def test_bad_firm_sections_name_the_key(tmp_path: Path, firm: object, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, firm)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_dsn_comes_from_the_environment_only(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"firm": {"gateway_id": "a", "dsn_env": "MY_DSN"}}))
    assert config.firm is not None
    with pytest.raises(FirmDsnMissing, match="MY_DSN is not set"):
        config.firm.dsn({"MY_DSN": "  "})
    assert config.firm.dsn({"MY_DSN": "postgresql://u:pw@h/db"}) == "postgresql://u:pw@h/db"
    shown = effective_config_text(config, {"MY_DSN": "postgresql://u:pw@h/db"})
    assert "pw@" not in shown and "MY_DSN: '***'" in shown
    secret = "postgresql://u:p%40ss-w0rd@h/db"
    assert config.firm.secrets({"MY_DSN": secret}) == [secret, "p%40ss-w0rd", "p@ss-w0rd"]
    assert config.firm.secrets({}) == []


def test_control_wire_form_round_trips() -> None:
    control = FirmControl(True, True, "drill", "cli:ops", datetime(2026, 1, 2, tzinfo=UTC), 7)
    assert FirmControl.from_json(json.dumps(control.to_json())) == control
    for bad in ("[]", '{"halted": true}', "not json"):
        with pytest.raises(ValueError):
            FirmControl.from_json(bad)
