"""``gateway serve`` and ``check-config`` as real processes when the start cannot succeed:
a broker SDK that is not installed, a broker that does not listen, a bad token set-up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_ENV, write_config

INSTALL = {
    "alpaca": "pip install 'execution-gateway[alpaca]'",
    "ib": "pip install 'execution-gateway[ib]'",
}
SDK_MODULE = {"alpaca": "alpaca", "ib": "ib_async"}


def _without_sdk(directory: Path, module: str) -> dict[str, str]:
    """An environment whose Python cannot import ``module``, as if its extra were not installed.

    ``sitecustomize`` runs at interpreter start; ``None`` in sys.modules makes every import of
    the module (and of its submodules) fail with ModuleNotFoundError.
    """
    site = directory / f"no-{module}"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    return {**os.environ, **TEST_ENV, "PYTHONPATH": str(site)}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on exit: nothing listens there


@pytest.mark.parametrize("broker", ["alpaca", "ib"])
def test_a_missing_broker_extra_is_one_line_naming_the_install_command(
    tmp_path: Path, broker: str
) -> None:
    config = write_config(tmp_path, {"gateway": {"broker": broker}})
    env = _without_sdk(tmp_path, SDK_MODULE[broker])
    env.update(ALPACA_API_KEY="key-for-tests", ALPACA_SECRET_KEY="secret-for-tests")

    served = _cli("serve", "--config", str(config), env=env)
    assert served.returncode == 2, served.stderr
    [line] = served.stderr.splitlines()
    assert INSTALL[broker] in line
    assert "Traceback" not in served.stderr + served.stdout
    assert served.stdout == ""  # it stopped before logging was even set up

    checked = _cli("check-config", "--config", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
    [warning] = checked.stderr.splitlines()
    assert warning == line.replace("gateway: ", "gateway: warning: ", 1)
    assert f"broker: {broker}" in checked.stdout  # the effective config is still printed


def test_check_config_does_not_warn_when_the_extra_is_installed(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"gateway": {"broker": "ib"}})
    checked = _cli("check-config", "--config", str(config), env={**os.environ, **TEST_ENV})
    assert checked.returncode == 0
    assert checked.stderr == ""


def test_an_invalid_config_without_the_extra_still_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"gateway": {"broker": "alpaca", "colour": "blue"}})
    checked = _cli("check-config", "--config", str(config), env=_without_sdk(tmp_path, "alpaca"))
    assert checked.returncode == 2
    assert "gateway.colour" in checked.stderr


def _serve_ib_on_a_closed_port(directory: Path, *options: str) -> tuple[int, str, int]:
    """``gateway serve`` on an IB config whose port nobody listens on: (exit, output, port)."""
    port = _closed_port()
    config = write_config(
        directory,
        {"gateway": {"broker": "ib"}, "brokers": {"ib": {"host": "127.0.0.1", "port": port}}},
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        env={**os.environ, **TEST_ENV},
    )
    return result.returncode, result.stdout, port


def test_ib_not_listening_is_one_log_line_naming_host_and_port_then_exit_3(
    tmp_path: Path,
) -> None:
    code, output, port = _serve_ib_on_a_closed_port(tmp_path)
    assert code == 3, output
    assert "Traceback" not in output
    records = [json.loads(line) for line in output.splitlines()]
    # ib_async logs its own attempt; of the gateway's own records, one error says why.
    ours = [r for r in records if not r["logger"].startswith("ib_async")]
    [error] = [r for r in ours if r["level"] in ("ERROR", "CRITICAL")]
    assert f"127.0.0.1:{port}" in error["message"]
    assert "could not start" in error["message"]
    assert "\n" not in error["message"] and "exc_info" not in error
    assert not any("startup failed" in r["message"] for r in records)


def test_ib_not_listening_shows_the_traceback_at_debug(tmp_path: Path) -> None:
    code, output, _ = _serve_ib_on_a_closed_port(tmp_path, "--log-level", "debug")
    assert code == 3
    assert "Traceback" in output and "ConnectionRefusedError" in output


def test_the_same_token_for_both_roles_is_one_line_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, **TEST_ENV, "GATEWAY_ADMIN_TOKEN": TEST_ENV["GATEWAY_TOKEN"]}
    result = _cli("serve", "--config", str(config), env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line == "gateway: GATEWAY_TOKEN and GATEWAY_ADMIN_TOKEN must differ"
