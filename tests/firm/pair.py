"""Helpers for the active/standby pair's real-process tests: two members of one account, one
simulated account file both name (opened only by the active one)."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.process import GatewayProcess
from tests.firm.conftest import firm_gateway

ACCOUNT = "pair-main"


def member(
    directory: Path, dsn: str, gateway_id: str, sim_file: Path, *, takeover_s: float = 2.0
) -> GatewayProcess:
    return firm_gateway(
        directory,
        dsn,
        gateway_id,
        firm={"account": ACCOUNT, "takeover_s": takeover_s},
        gateway={"brokers": {"simulated": {"state_file": str(sim_file)}}},
    )


def readyz(gw: GatewayProcess) -> tuple[int, dict[str, Any]]:
    try:
        answer = httpx.get(f"{gw.url}/readyz", timeout=1)
    except httpx.HTTPError:
        return 0, {}
    return answer.status_code, answer.json()


def start_standby(gw: GatewayProcess, timeout_s: float = 30.0) -> GatewayProcess:
    """Start ``gw`` expecting it to wait as the standby (readyz 503 standby)."""
    gw.start_process()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert gw.proc is not None
        if gw.proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {gw.proc.returncode}:\n{gw.log()}")
        if readyz(gw) == (503, {"status": "standby"}):
            return gw
        time.sleep(0.05)
    raise RuntimeError(f"no standby in {timeout_s}s:\n{gw.log()}")


def wait_ready(gw: GatewayProcess, timeout_s: float) -> float:
    """Seconds until ``gw`` answers readyz 200 (AssertionError after timeout_s)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if readyz(gw)[0] == 200:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not ready within {timeout_s}s:\n{gw.log()}")


def sim_account(path: Path) -> tuple[dict[str, int], dict[str, Decimal]]:
    """The simulated account's file: submit counts by client_order_id, positions by symbol."""
    with sqlite3.connect(path) as db:
        counts = dict(db.execute("SELECT client_order_id, count FROM submit_counts"))
        positions = {s: Decimal(q) for s, q in db.execute("SELECT symbol, qty FROM positions")}
    return counts, positions
