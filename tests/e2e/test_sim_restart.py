"""The paper account survives a restart of the real process (kill -9 or SIGTERM) by default:
cash, positions and resting orders (same broker ids, still open) come back, and the next
order gets an id no order had before."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import STRATEGY_TOKEN, signal
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}


def _cash(gw: GatewayProcess) -> Decimal:
    with contextlib.closing(sqlite3.connect(gw.state_dir / "sim_broker.sqlite3")) as db:
        return Decimal(db.execute("SELECT cash FROM account").fetchone()[0])


def _accepted(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    decision: dict[str, Any] = client.post("/v1/signals", json=body).json()
    assert decision["decision"] == "accepted", decision
    return decision["order"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
def test_the_paper_account_survives_a_restart(tmp_path: Path, stop: str) -> None:
    gw = GatewayProcess(tmp_path).start()
    try:
        with httpx.Client(base_url=gw.url, headers=HEADERS) as client:
            bought = _accepted(client, signal("buy", quantity=10))
            gtc = _accepted(
                client,
                signal("gtc", quantity=5, order_type="limit", limit_price=190, time_in_force="gtc"),
            )
            day = _accepted(client, signal("day", quantity=2, order_type="limit", limit_price=191))
            positions = client.get("/v1/positions").json()
            open_orders = client.get("/v1/orders").json()
            equity = client.get("/v1/status").json()["risk"]["equity"]
        cash = _cash(gw)
    finally:
        if stop == "sigkill":
            gw.kill()
        else:
            assert gw.terminate() == 0
    assert bought["status"] == "filled"
    assert cash == Decimal(100000) - 10 * Decimal("200.05")
    assert {o["broker_order_id"] for o in open_orders} == {
        gtc["broker_order_id"],
        day["broker_order_id"],
    }

    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS) as client:
            assert client.get("/v1/positions").json() == positions
            # Still resting at the broker: same ids, still open, nothing marked lost.
            assert client.get("/v1/orders").json() == open_orders
            status = client.get("/v1/status").json()
            assert status["risk"]["equity"] == equity
            assert status["reconciliation"]["lost_orders"] == []
            assert _cash(again) == cash
            after = _accepted(client, signal("after", quantity=1))
    finally:
        again.terminate()
    taken = {o["broker_order_id"] for o in (bought, gtc, day)}
    assert after["broker_order_id"] not in taken
    assert after["broker_order_id"] == "sim-4"  # the counter went on, it did not restart


def test_an_unreadable_account_refuses_to_start_with_one_line_naming_the_file(
    tmp_path: Path,
) -> None:
    gw = GatewayProcess(tmp_path).start()  # a gateway that ran here before
    assert gw.terminate() == 0
    path = gw.state_dir / "sim_broker.sqlite3"
    path.write_bytes(b"not a database" * 100)
    result = gw.cli("serve")
    assert result.returncode == 2  # a file that will never heal: not worth a restart loop
    assert str(path) in result.stderr and "unreadable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == b"not a database" * 100  # never replaced by a fresh account
