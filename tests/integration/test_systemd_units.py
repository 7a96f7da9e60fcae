"""The systemd units load cleanly and stay hardened.

`systemd-analyze verify` checks that ExecStart is executable, and the production path
(/opt/execution-gateway/venv/bin/gateway) does not exist on a development machine. Rather than
ignore that one message, each test builds a throw-away root with the host's system units (for
sysinit.target, network-online.target...), the unit under test and an executable stub at the
ExecStart path, and runs `verify --root` there: every other check stays meaningful, and
`test_verify_fails_without_the_binary` proves the root is honoured. Unknown keys only warn
(exit 0), so a clean run also means nothing on stderr.

Skipped when systemd-analyze is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
EXEC_PATH = "opt/execution-gateway/venv/bin/gateway"
MAX_EXPOSURE = 2.0
# The instance name a template is verified under (verify needs a concrete unit).
INSTANCE = "alpaca-paper"

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

UNITS = ["execution-gateway.service", "execution-gateway@.service"]


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False)


def _host_unit_dir() -> Path:
    for candidate in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        path = Path(candidate)
        if (path / "sysinit.target").exists():
            return path
    pytest.skip("no system unit directory with sysinit.target on this host")


def _fake_root(tmp_path: Path, unit: str, *, with_binary: bool = True) -> Path:
    """A root holding the host's units, ours, and (optionally) the ExecStart stub.

    Returns the path of the concrete unit to verify (an instance link for a template).
    """
    root = tmp_path / "root"
    shutil.copytree(_host_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    shutil.copy(UNIT_DIR / unit, etc / unit)
    if with_binary:
        stub = root / EXEC_PATH
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    if unit.endswith("@.service"):
        instance = etc / unit.replace("@.service", f"@{INSTANCE}.service")
        instance.symlink_to(unit)
        return instance
    return etc / unit


@pytest.mark.parametrize("unit", UNITS)
def test_verify(unit: str, tmp_path: Path) -> None:
    path = _fake_root(tmp_path, unit)
    result = _analyze("verify", "--man=no", f"--root={tmp_path / 'root'}", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_fails_without_the_binary(tmp_path: Path) -> None:
    path = _fake_root(tmp_path, UNITS[0], with_binary=False)
    result = _analyze("verify", "--man=no", f"--root={tmp_path / 'root'}", str(path))
    assert result.returncode != 0
    assert "/opt/execution-gateway/venv/bin/gateway" in result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure(unit: str, tmp_path: Path) -> None:
    path = _fake_root(tmp_path, unit)
    result = _analyze("security", "--offline=yes", "--no-pager", str(path))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, output


@pytest.mark.parametrize("unit", UNITS)
def test_contract_settings(unit: str) -> None:
    """The settings the gateway's code relies on (sd_notify, watchdog, paths) are present."""
    text = (UNIT_DIR / unit).read_text()
    settings = dict(
        line.split("=", 1)
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] == "30"
    assert settings["Restart"] == "on-failure"
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["RestrictAddressFamilies"].split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    if unit.endswith("@.service"):
        assert "--config /etc/execution-gateway/%i.yaml" in settings["ExecStart"]
        assert "--state-dir /var/lib/execution-gateway/%i" in settings["ExecStart"]
        assert settings["StateDirectory"] == "execution-gateway/%i"
    else:
        assert settings["ExecStart"] == (
            "/opt/execution-gateway/venv/bin/gateway serve"
            " --config /etc/execution-gateway/gateway.yaml"
            " --state-dir /var/lib/execution-gateway"
        )
        assert settings["EnvironmentFile"] == "/etc/execution-gateway/env"
        assert settings["StateDirectory"] == "execution-gateway"


def test_env_example_lists_every_secret() -> None:
    text = (UNIT_DIR / "env.example").read_text()
    lines = text.splitlines()
    for name in (
        "GATEWAY_TOKEN",
        "GATEWAY_ADMIN_TOKEN",
        "GATEWAY_RESUME_AUTH_CODE",
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
    ):
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        assert lines[index - 1].startswith("#"), f"{name} has no comment"
        assert "replace-with" in lines[index], f"{name} does not hold a placeholder"
