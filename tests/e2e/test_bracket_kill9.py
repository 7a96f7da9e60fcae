"""A bracket through kill -9 of the real process: after the restart the position is still
protected, and the market through the stop closes it and cancels the take profit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN, signal
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("never happened")


def protection(client: httpx.Client) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get("/v1/status").json()["protection"]
    return rows


def test_a_protected_position_survives_kill_9_and_its_stop_still_closes_it(
    tmp_path: Path,
) -> None:
    gw = GatewayProcess(tmp_path).start()
    try:
        with httpx.Client(base_url=gw.url, headers=HEADERS) as client:
            body = signal("k9-1", quantity=10, stop_loss_price=190, take_profit_price=220)
            decision = client.post("/v1/signals", json=body).json()
            assert decision["decision"] == "accepted", decision
            wait_for(lambda: any(r["protected"] for r in protection(client)))
    finally:
        gw.kill()

    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS) as client:
            rows = protection(client)
            assert [(r["symbol"], r["qty"], r["stop_prices"]) for r in rows] == [
                ("AAPL", 10.0, [190.0])
            ]
            assert rows[0]["protected"] is True
            status = client.get("/v1/status").json()
            assert status["reconciliation"]["adopted_orders"] == []
            assert status["reconciliation"]["lost_orders"] == []
            moved = httpx.post(
                f"{again.url}/v1/sim/quotes",
                headers=ADMIN,
                json=[{"symbol": "AAPL", "bid": 189.9, "ask": 190.0}],
            )
            assert moved.status_code == 200
            wait_for(lambda: client.get("/v1/positions").json() == [])
            wait_for(lambda: client.get("/v1/orders").json() == [])
    finally:
        assert again.terminate() == 0
