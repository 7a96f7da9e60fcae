"""sd_notify from the real process: READY only when ready, STATUS lines, STOPPING on SIGTERM."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess


def _messages(sock: socket.socket, until: str, timeout_s: float = 15.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if any(until in m for m in got):
            break
    return got


def test_ready_status_watchdog_and_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        gw = GatewayProcess(tmp_path / "gw")
        gw.env["NOTIFY_SOCKET"] = str(path)
        gw.env["WATCHDOG_USEC"] = "400000"
        gw.start()
        first = _messages(sock, "WATCHDOG=1")
        ready = [m for m in first if "READY=1" in m]
        assert ready and "STATUS=ACTIVE" in ready[0]
        # /readyz was 200 when start() returned, and READY=1 came with it, not before the start.
        httpx.post(
            f"{gw.url}/v1/halt",
            json={"reason": "notify drill"},
            headers={"Authorization": f"Bearer {STRATEGY_TOKEN}"},
        )
        halted = _messages(sock, "STATUS=HALTED")
        assert any("STATUS=HALTED: manual: notify drill" in m for m in halted)
        assert gw.terminate() == 0
        stopping = _messages(sock, "STOPPING=1", timeout_s=5)
        assert any("STOPPING=1" in m for m in stopping)
    finally:
        sock.close()


def test_the_journal_check_after_a_crash_extends_the_start_timeout(tmp_path: Path) -> None:
    """After a kill -9 (no seal) the start runs the journal's full integrity check: systemd
    hears EXTEND_TIMEOUT_USEC while the journal opens, before READY=1, so TimeoutStartSec does
    not kill a long check."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        gw = GatewayProcess(tmp_path / "gw")
        gw.start()
        gw.kill()  # no seal: the next start checks the whole journal
        gw.env["NOTIFY_SOCKET"] = str(path)
        gw.start()
        got = _messages(sock, "READY=1")
        extend = [i for i, m in enumerate(got) if "EXTEND_TIMEOUT_USEC=" in m]
        ready = [i for i, m in enumerate(got) if "READY=1" in m]
        assert extend and ready and extend[0] < ready[0], got
        assert "STATUS=checking and opening the journal" in got[extend[0]]
        assert gw.terminate() == 0
    finally:
        sock.close()
