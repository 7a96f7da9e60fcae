"""``gateway demo --fast`` as a user runs it: a real process, no GATEWAY_* variables, no repo files.

The packages are copied out of the repository and run from an empty directory, so the demo can
rely on nothing but the installed code (as from a wheel); the repo's ./state and the configured
state_dir stay untouched, and the demo's temporary directory is gone afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from gateway.config import load_config
from tests.conftest import ROOT

KEY_LINES = [
    "[1/10] an accepted order",
    "-> accepted, filled: buy 100 AAPL @ 200.05, notional 20005.00",
    "[2/10] a protected entry: its stop and take profit held by the broker",
    "-> accepted, filled: buy 5 SPY @ 590.05",
    "leg stop_loss at 580",
    "leg take_profit at 600",
    "/v1/status protection: SPY protected at [580.0]",
    "SPY position closed; no stop left behind",
    "[3/10] a stale quote refused",
    "-> rejected [quote_stale]",
    "[4/10] a portfolio heat refusal",
    "-> rejected [portfolio_heat]; position risk 1.19%, heat 0.60% -> 1.79%",
    "[5/10] a strategy failing three times halts the gateway",
    "-> guard() reported the failure: 1 in a row, gateway active",
    "-> guard() reported the failure: 3 in a row, gateway halted",
    "-> HALTED, trigger technical_failure",
    "-> blocked [halted]",
    "[6/10] a resume refused in cooldown",
    "admin resume -> 409 cooldown_active",
    "[7/10] a forced resume",
    "admin resume --force with a wrong auth code -> 403",
    "admin resume --force with GATEWAY_RESUME_AUTH_CODE -> 200, active",
    "[8/10] the kill switch cancels resting orders",
    "-> accepted, resting (accepted): buy 52 AAPL @ 190.00",
    "-> accepted, resting (accepted): buy 17 SPY @ 560.50",
    "open orders: 2",
    "kill -> cancelled 2, failed 0",
    "open orders: 0",
    "[9/10] a fire drill: the kill switch catches an order on its way",
    "drill: every broker call now takes 1 s (/v1/sim/faults)",
    "-> accepted, then canceled [halted]: buy 17 SPY @ 560.50",
    "kill -> cancelled 1, failed 0; the order that landed after the halt: canceled",
    "[10/10] the journal's summary",
    "signals: accepted 5, blocked 1, rejected 2",
    "orders:  canceled 4, filled 3",
    "fills:   3",
    "demo passed: all 10 steps showed what they should",
]


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in directory.rglob("*")
    }


def _installed_copy(tmp_path: Path) -> Path:
    """gateway/ and brokers/ alone, as an install would lay them out: no config/, no tests/."""
    site = tmp_path / "site"
    for package in ("gateway", "brokers"):
        shutil.copytree(
            ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return site


def _run(command: list[str], tmp_path: Path, site: Path) -> subprocess.CompletedProcess[str]:
    for name in ("cwd", "home", "tmp"):
        (tmp_path / name).mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        command, cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=120
    )


def _normalised(stdout: str) -> str:
    """The run without what may differ between runs: paths, port, timings, quote age."""
    text = re.sub(r"/\S*gateway-demo-\S+", "<dir>", stdout)
    text = re.sub(r"127\.0\.0\.1:\d+", "<addr>", text)
    text = re.sub(r"in [\d.]+ ms", "in <ms>", text)
    return re.sub(r"is [\d.]+s old", "is <age>s old", text)


def test_demo_runs_every_step_from_an_installed_copy_and_leaves_nothing(tmp_path: Path) -> None:
    watched = {ROOT / "state", load_config(ROOT / "config" / "gateway.yaml").gateway.state_dir}
    before = {d: _snapshot(d) for d in watched}
    site = _installed_copy(tmp_path)

    where = _run(
        [sys.executable, "-c", "import gateway.demo.run as d; print(d.__file__)"], tmp_path, site
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr

    runs = [_run([sys.executable, "-m", "gateway.cli", "demo", "--fast"], tmp_path, site)]
    first = runs[0]
    assert first.returncode == 0, first.stdout + first.stderr
    for line in KEY_LINES:
        assert line in first.stdout, f"missing {line!r} in:\n{first.stdout}"
    assert "Traceback" not in first.stderr and "FAILED" not in first.stdout

    # The same run every time (timestamps, port and paths aside).
    runs.append(_run([sys.executable, "-m", "gateway.cli", "demo", "--fast"], tmp_path, site))
    assert runs[1].returncode == 0, runs[1].stdout + runs[1].stderr
    assert _normalised(runs[1].stdout) == _normalised(first.stdout)

    assert {d: _snapshot(d) for d in watched} == before
    for name in ("cwd", "home", "tmp"):
        assert not any((tmp_path / name).iterdir()), f"the demo left files in {name}/"
