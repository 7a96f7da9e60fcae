"""``gateway archive --before DATE`` as a real process: refused (one line, exit 2) while the
gateway runs, for a pair's PostgreSQL journal and for a day not over; otherwise one line saying
what moved; a kill -9 between the archive's write and the live delete converges on a rerun; the
restarted gateway answers a replay of an archived signal_id with its first decision."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import STRATEGY_TOKEN, write_config
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
OLD = "2020-01-02T15:00:00+00:00"  # a trading day long over
STAMPS = {
    "signals": ("received_at", "decided_at"),
    "orders": ("created_at", "updated_at"),
    "order_events": ("at",),
    "fills": ("at",),
    "stream": ("at",),
    "events": ("at",),
}


def _trade(gw: GatewayProcess, n: int) -> dict[str, str]:
    decided = {}
    with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=10) as client:
        for k in range(n):
            body = {
                "signal_id": f"arch-{k}",
                "strategy": "momentum",
                "symbol": "AAPL",
                "side": "buy",
                "quantity": 1,
            }
            answer = client.post("/v1/signals", json=body)
            assert answer.json()["decision"] == "accepted", answer.text
            decided[body["signal_id"]] = answer.text
        for _ in range(200):
            if len(client.get("/v1/fills").json()) == n:
                break
            time.sleep(0.05)
    return decided


def _age(journal: Path) -> None:
    """Make everything journaled so far belong to a trading day long over."""
    with sqlite3.connect(journal) as db:
        for table, columns in STAMPS.items():
            sets = ", ".join(f"{c} = CASE WHEN {c} IS NULL THEN NULL ELSE ? END" for c in columns)
            db.execute(f"UPDATE {table} SET {sets}", (OLD,) * len(columns))


def _kill9_between_write_and_delete(state_dir: Path) -> int:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from gateway.store.archive import archive\n"
        "archive(Path(sys.argv[1]), '2020-01-03T14:25:00+00:00', label='2020-01-03',\n"
        "        before_delete=lambda: os.kill(os.getpid(), signal.SIGKILL))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(state_dir)], timeout=60)
    return done.returncode


def test_archive_refuses_while_running_then_moves_and_converges_after_a_kill9(
    tmp_path: Path,
) -> None:
    gw = GatewayProcess(tmp_path)
    with gw:
        decided = _trade(gw, 3)
        running = gw.cli("archive", "--before", "2020-01-03")
        assert running.returncode == 2
        assert running.stderr.count("\n") == 1 and "in use" in running.stderr, running.stderr
        assert gw.terminate() == 0
    journal = gw.state_dir / "journal.sqlite3"
    _age(journal)
    future = gw.cli("archive", "--before", "2999-01-01")
    assert future.returncode == 2 and "after the current trading day" in future.stderr
    assert _kill9_between_write_and_delete(gw.state_dir) == -signal.SIGKILL
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM signals").fetchone()[0] == 3  # nothing lost
    done = gw.cli("archive", "--before", "2020-01-03")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert "\n" not in line and "3 signals, 3 orders, 3 fills" in line, line
    assert "journal-until-2020-01-03.sqlite" in line and "interrupted run" in line
    again = gw.cli("archive", "--before", "2020-01-03", "--vacuum")
    assert again.returncode == 0 and again.stdout.startswith("archived nothing"), again.stdout
    with gw:
        with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=10) as client:
            body = {
                "signal_id": "arch-1",
                "strategy": "momentum",
                "symbol": "AAPL",
                "side": "buy",
                "quantity": 1,
            }
            replay = client.post("/v1/signals", json=body)
        assert replay.text == decided["arch-1"]
        assert replay.headers["Idempotent-Replayed"] == "true"


def test_archive_refuses_a_pairs_postgresql_journal(tmp_path: Path) -> None:
    firm = {"dsn_env": "GATEWAY_FIRM_DSN", "gateway_id": "a", "account": "acct"}
    config = write_config(tmp_path, {"firm": firm})
    command = [sys.executable, "-m", "gateway.cli", "archive", "--config", str(config)]
    done = subprocess.run(
        [*command, "--before", "2020-01-03"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GATEWAY_FIRM_DSN": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not supported" in done.stderr, done.stderr
