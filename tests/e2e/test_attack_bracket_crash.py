"""Attack: kill -9 around a bracket's submit, with real `gateway serve` processes.

Before the broker sees it (the broker's answer delayed by a fire drill, the process killed
while the intent is committed and the call is on its way): after a restart the entry and its
legs are settled as never placed, nothing rests, nothing is protected that is not held.
After the broker took it (its answer lost, look-ups failing, the process killed while it
retries): after a restart the entry is filled, its legs work as the broker holds them, the
position counts as protected at the stop, nothing was sent twice, and moving the market
through the stop closes the position and cancels the take profit."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = {
    "signal_id": "crash-br-1",
    "strategy": "momentum",
    "symbol": "AAPL",
    "side": "buy",
    "quantity": 10,
    "stop_loss_price": 190,
    "take_profit_price": 220,
}


def _post_in_background(url: str) -> threading.Thread:
    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/v1/signals", json=BODY, headers=HEADERS, timeout=30)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _wait_intent(state_dir: Path, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(state_dir / "journal.sqlite3")) as db:
            rows = db.execute("SELECT count(*) FROM orders").fetchone()[0]
        if rows >= 3:  # the entry and its two legs, committed together
            return
        time.sleep(0.02)
    raise AssertionError("the intent was never committed")


def _until(check: Any, timeout_s: float = 10) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("never settled")


def _sim_counts(state_dir: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(state_dir / "sim_broker.sqlite3")) as sim:
        return dict(sim.execute("SELECT client_order_id, count FROM submit_counts").fetchall())


def test_kill_9_before_the_broker_sees_a_bracket_leaves_nothing_pending(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()
    with httpx.Client(base_url=gw.url, headers=ADMIN) as admin:
        assert admin.post("/v1/sim/faults", json={"latency_ms": 5000}).status_code == 200
    _post_in_background(gw.url)
    _wait_intent(gw.state_dir)
    time.sleep(0.2)
    gw.kill()
    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS) as client:

            def settled() -> list[Any] | None:
                orders = client.get("/v1/orders", params={"status": "all"}).json()
                return orders if all(o["status"] != "pending_submit" for o in orders) else None

            orders = _until(settled)
            assert len(orders) == 3, orders
            assert {o["status"] for o in orders} <= {"rejected", "expired", "canceled"}, orders
            assert client.get("/v1/orders").json() == []
            status = client.get("/v1/status").json()
            assert status["protection"] == []
            assert client.get("/v1/positions").json() == []
            # The decision a replay gets is the recovered one, and it is not a live order.
            replay = client.post("/v1/signals", json=BODY).json()
            assert replay["decision"] in ("rejected", "accepted"), replay
            if replay["decision"] == "accepted":
                assert replay["order"]["status"] in ("rejected", "expired", "pending_submit")
    finally:
        again.terminate()
    assert max(_sim_counts(gw.state_dir).values(), default=0) <= 1


def test_kill_9_after_the_broker_took_a_bracket_recovers_it_protected(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()
    with httpx.Client(base_url=gw.url, headers=ADMIN) as admin:
        faults = {"lose_submit_answers": 1, "fail_lookups_s": 60}
        assert admin.post("/v1/sim/faults", json=faults).status_code == 200
    _post_in_background(gw.url)
    _wait_intent(gw.state_dir)
    _until(lambda: _sim_counts(gw.state_dir))  # the broker has it
    time.sleep(0.3)
    gw.kill()
    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        with (
            httpx.Client(base_url=again.url, headers=HEADERS) as client,
            httpx.Client(base_url=again.url, headers=ADMIN) as admin,
        ):

            def protected() -> list[Any] | None:
                rows = client.get("/v1/status").json()["protection"]
                return rows if rows and all(r["protected"] for r in rows) else None

            rows = _until(protected)
            assert [(r["symbol"], r["qty"], r["stop_prices"]) for r in rows] == [
                ("AAPL", 10.0, [190.0])
            ]
            live = client.get("/v1/orders").json()
            assert sorted((o["order_type"], o["client_order_id"][-3:]) for o in live) == [
                ("limit", "-tp"),
                ("stop", "-sl"),
            ], live
            heat = client.get("/v1/status").json()["risk"]["portfolio_heat"]
            # To the stop (10 x (200 - 190)), not at stop_loss_percent (10 x 200 x 3%).
            assert abs(heat - 10 * (200 - 190) / 100000) < 1e-5, heat
            assert client.post("/v1/signals", json=BODY).json()["decision"] == "accepted"
            quote = [{"symbol": "AAPL", "bid": 189.9, "ask": 190.0}]
            assert admin.post("/v1/sim/quotes", json=quote).status_code == 200
            _until(lambda: client.get("/v1/positions").json() == [])
            _until(lambda: client.get("/v1/orders").json() == [])
            recon = client.get("/v1/status").json()["reconciliation"]
            assert recon["lost_orders"] == [] and recon["positions"] == [], recon
    finally:
        again.terminate()
    counts = _sim_counts(gw.state_dir)
    assert counts and max(counts.values()) == 1, counts
