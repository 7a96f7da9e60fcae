"""The commands that talk to a running gateway, as real processes: who they are recorded as,
what they say when the gateway is not there, and how they end when their reader goes away."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import RESUME_CODE, STRATEGY_TOKEN, TEST_ENV, free_port, write_config
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}


def _journal_events(state_dir: Path, kind: str) -> list[dict[str, object]]:
    with sqlite3.connect(f"file:{state_dir / 'journal.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM events WHERE kind = ? ORDER BY id", (kind,))
        return [json.loads(payload) for (payload,) in rows]


def _into_a_closed_pipe(
    command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with stdout a pipe whose reader has already gone (``| head -1``, at once)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, env=env
        )
    finally:
        os.close(write_end)


def test_cli_actions_are_recorded_as_the_clis(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw:
        halted = gw.cli("halt", "test", "reason")
        assert halted.returncode == 0, halted.stderr
        status = httpx.get(f"{gw.url}/v1/status", headers=HEADERS).json()
        assert status["halt"]["reason"] == "test reason"
        assert status["halt"]["by"] == "cli:strategy"

        forced = gw.cli("resume", "--force", "--auth-code", RESUME_CODE)
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["state"] == "active"
        [resumed] = _journal_events(gw.state_dir, "halt.forced_resume")
        assert resumed["by"] == "cli:admin"

        # The same action from a program on the API is the API's.
        answer = httpx.post(f"{gw.url}/v1/halt", headers=HEADERS, json={"reason": "from code"})
        assert answer.json()["halt"]["by"] == "api:strategy"
        killed = gw.cli("kill", "drill")
        assert killed.returncode == 0, killed.stderr
    kills = _journal_events(gw.state_dir, "kill_switch")
    assert [k["by"] for k in kills] == ["cli:strategy"]


def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw:
        command = [sys.executable, "-m", "gateway.cli", "status", "--config", str(gw.config_path)]
        result = _into_a_closed_pipe(command, gw.env)
    assert result.returncode == 0
    assert result.stderr == ""


def test_check_config_and_demo_into_a_closed_pipe_end_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, **TEST_ENV, "TMPDIR": str(tmp_path)}
    checked = _into_a_closed_pipe(
        [sys.executable, "-m", "gateway.cli", "check-config", "--config", str(config)], env
    )
    assert checked.returncode == 0
    assert checked.stderr == ""
    # The demo is cut short at its first line: it ends as a shell reports SIGPIPE, no traceback.
    demo = _into_a_closed_pipe([sys.executable, "-m", "gateway.cli", "demo", "--fast"], env)
    assert demo.returncode == 141
    assert "Traceback" not in demo.stderr and "BrokenPipe" not in demo.stderr


def test_cannot_reach_the_gateway_names_the_url_it_tried(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(tmp_path, {"gateway": {"api": {"host": "127.0.0.1", "port": port}}})
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **TEST_ENV},
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"cannot reach the gateway at http://127.0.0.1:{port}" in line
