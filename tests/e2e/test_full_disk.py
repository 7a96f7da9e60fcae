"""A real full disk under a real process: the state dir is a small tmpfs that fills up.

The gateway halts (journal_failure), answers signals 503 journal_unavailable, sends nothing
without its intent, answers halt and kill with 200, shows the journal cannot write in
/v1/status and /metrics, stops on SIGTERM, and resumes once space is freed."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path, leave: int) -> Path:
    """Fill the file system but ``leave`` bytes. The gateway may write meanwhile (its WAL
    checkpoint runs in the background): running out of space first is what was wanted."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * max(free - leave, 0))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler


def _signal(n: int) -> dict[str, object]:
    return {
        "signal_id": f"fd-{n}",
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy" if n % 2 == 0 else "sell",
        "quantity": 1,
    }


def _wait(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_halts_cleanly_and_recovers(tmp_path: Path) -> None:
    gateway = {
        "gateway": {"schedule": {"risk_sweep_s": 0.5}},
        # The broker is another system: its account does not live on our full disk.
        "brokers": {"simulated": {"state_file": str(tmp_path / "sim_broker.sqlite3")}},
    }
    risk = {
        "emergency": {"resume_cooldown_s": 0},
        "pre_trade": {"max_orders_per_second": 100000},
    }
    with tmpfs(tmp_path / "state", "4m") as state:
        gw = GatewayProcess(tmp_path, gateway=gateway, risk=risk).start()
        try:
            with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=10) as client:
                assert client.post("/v1/signals", json=_signal(0)).json()["decision"] == "accepted"
                filler = _fill(state, leave=0)
                codes = []
                for n in range(1, 400):
                    answer = client.post("/v1/signals", json=_signal(n))
                    codes.append(answer.status_code)
                    assert answer.status_code in (200, 503), answer.text
                    if answer.status_code == 503:
                        assert answer.json()["code"] == "journal_unavailable"
                        break
                assert codes[-1] == 503, "the full disk never refused a write"
                _wait(lambda: client.get("/v1/status").json()["state"] == "halted")
                status = client.get("/v1/status").json()
                assert status["halt"]["trigger"] == "journal_failure"
                assert status["journal"]["writable"] is False
                assert "gateway_journal_writable 0.0" in client.get("/metrics").text
                assert client.post("/v1/halt", json={"reason": "disk"}).status_code == 200
                kill = client.post("/v1/kill", json={"reason": "disk"})
                assert kill.status_code == 200 and kill.json()["status"]["state"] == "halted"
                blocked = client.post("/v1/signals", json=_signal(1000))
                assert blocked.status_code in (200, 503)
                refused = client.post("/v1/resume", json={}, headers=ADMIN)
                assert refused.status_code == 409, refused.text
                filler.unlink()  # space again: the journal's probe finds it writable
                _wait(lambda: client.get("/v1/status").json()["journal"]["writable"] is True)
                resumed = client.post("/v1/resume", json={}, headers=ADMIN)
                assert resumed.status_code == 200, resumed.text
                assert resumed.json()["state"] == "active"
                after = client.post("/v1/signals", json=_signal(2000))
                assert after.json()["decision"] == "accepted"
        finally:
            if gw.proc is not None and gw.proc.poll() is None:
                assert gw.terminate() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_sigterm_on_a_full_disk_stops_cleanly(tmp_path: Path) -> None:
    gateway = {"brokers": {"simulated": {"state_file": str(tmp_path / "sim_broker.sqlite3")}}}
    with tmpfs(tmp_path / "state", "4m") as state:
        gw = GatewayProcess(tmp_path, gateway=gateway).start()
        try:
            with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=10) as client:
                _fill(state, leave=0)
                for n in range(200):
                    if client.post("/v1/signals", json=_signal(n)).status_code == 503:
                        break
        finally:
            assert gw.terminate() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_kill_on_a_full_disk_survives_a_crash(tmp_path: Path) -> None:
    # The disk is full: the journal cannot write and halts the gateway; an operator kills.
    # The answer is 200 with the halt in force; then the process dies (kill -9) before any
    # space came back. The halt the operator was told about must be there after a restart.
    gateway = {"brokers": {"simulated": {"state_file": str(tmp_path / "sim_broker.sqlite3")}}}
    risk = {"pre_trade": {"max_orders_per_second": 100000}}
    with tmpfs(tmp_path / "state", "4m") as state:
        gw = GatewayProcess(tmp_path, gateway=gateway, risk=risk).start()
        try:
            with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=10) as client:
                filler = _fill(state, leave=0)
                for n in range(400):
                    if client.post("/v1/signals", json=_signal(n)).status_code == 503:
                        break
                kill = client.post("/v1/kill", json={"reason": "disk full: stop everything"})
                assert kill.status_code == 200
                halt = kill.json()["status"]["halt"]
                assert halt["kill_switch"] is True
                assert halt["persisted"] is True, halt  # on disk, full as it is
        finally:
            gw.kill()
        filler.unlink()
        again = GatewayProcess(tmp_path, gateway=gateway, risk=risk, port=gw.port).start()
        try:
            with httpx.Client(base_url=again.url, headers=HEADERS, timeout=10) as client:
                status = client.get("/v1/status").json()
            assert status["state"] == "halted", status["halt"]
            assert status["halt"]["kill_switch"] is True
        finally:
            assert again.terminate() == 0
