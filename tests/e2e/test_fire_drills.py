"""Fire drills against a real `gateway serve`: a kill while an order is on the wire, a lost
submit answer with failing look-ups. The drills act only at the broker (POST /v1/sim/faults):
the gateway cannot tell them from a real outage."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _resting_buy(signal_id: str) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 5,
        "order_type": "limit",
        "limit_price": 190,
        "time_in_force": "gtc",
    }


def _wait(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def test_the_kill_switch_catches_an_order_on_the_wire(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw, httpx.Client(base_url=gw.url, timeout=30) as client:
        drill = client.post("/v1/sim/faults", json={"latency_ms": 1000}, headers=ADMIN)
        assert drill.status_code == 200 and drill.json()["latency_ms"] == 1000
        sending, answer = _in_background(
            lambda: client.post("/v1/signals", json=_resting_buy("on-the-wire"), headers=HEADERS)
        )
        _wait(lambda: client.get("/v1/status", headers=HEADERS).json()["orders"]["in_flight"] == 1)
        kill = client.post("/v1/kill", json={"reason": "drill"}, headers=HEADERS)
        sending.join(30)
        assert kill.status_code == 200
        report = kill.json()
        assert report["cancelled"] == 1, report
        assert report["failed"] == []
        assert report["status"]["state"] == "halted"
        decision = answer[0].json()
        assert decision["decision"] == "accepted"
        assert decision["order"]["status"] == "canceled"
        assert [r["code"] for r in decision["reasons"]] == ["halted"]
        # Nothing rests: not in the gateway's view, not at the broker.
        assert client.get("/v1/orders", headers=HEADERS).json() == []
        all_orders = client.get("/v1/orders", params={"status": "all"}, headers=HEADERS).json()
        assert [o["status"] for o in all_orders] == ["canceled"]
        client.post("/v1/sim/faults", json={}, headers=ADMIN)
        positions = client.get("/v1/positions", headers=HEADERS).json()
        assert positions == []


def test_a_lost_answer_is_unknown_not_rejected_and_is_settled(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        drill = {"lose_submit_answers": 1, "fail_lookups_s": 3}
        assert client.post("/v1/sim/faults", json=drill, headers=ADMIN).status_code == 200
        first = client.post("/v1/signals", json=_resting_buy("lost"), headers=HEADERS)
        decision = first.json()
        assert decision["decision"] == "accepted", decision
        assert decision["order"]["status"] == "pending_submit"
        assert [r["code"] for r in decision["reasons"]] == ["broker_answer_unknown"]
        coid = decision["order"]["client_order_id"]
        status = client.get("/v1/status", headers=HEADERS).json()
        assert status["failures"]["consecutive"] == 0  # not a strategy failure
        # The broker's own event, or a look-up once they answer again, settles its fate.
        _wait(
            lambda: any(
                o["client_order_id"] == coid and o["status"] == "accepted"
                for o in client.get("/v1/orders", headers=HEADERS).json()
            ),
            timeout_s=30,
        )
        assert client.get("/v1/status", headers=HEADERS).json()["orders"]["unknown"] == []
        # A replay answers the first decision, exactly, and says it is a replay.
        replay = client.post("/v1/signals", json=_resting_buy("lost"), headers=HEADERS)
        assert replay.text == first.text
        assert replay.headers["Idempotent-Replayed"] == "true"


def test_an_order_of_unknown_fate_is_cancelled_by_the_kill_switch(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        drill = {"lose_submit_answers": 1, "fail_lookups_s": 30}
        client.post("/v1/sim/faults", json=drill, headers=ADMIN)
        decision = client.post("/v1/signals", json=_resting_buy("x"), headers=HEADERS).json()
        assert decision["order"]["status"] == "pending_submit"
        kill = client.post("/v1/kill", json={"reason": "drill"}, headers=HEADERS).json()
        assert kill["cancelled"] == 1, kill
        client.post("/v1/sim/faults", json={}, headers=ADMIN)
        _wait(lambda: client.get("/v1/status", headers=HEADERS).json()["orders"]["unknown"] == [])
        all_orders = client.get("/v1/orders", params={"status": "all"}, headers=HEADERS).json()
        assert [o["status"] for o in all_orders] == ["canceled"]


def test_a_kill_leaves_nothing_resting_when_answers_are_lost_on_the_wire(tmp_path: Path) -> None:
    # Four resting buys on the wire (1 s latency); then the broker speeds up, so the kill's
    # cancel_all lands before them; their answers are lost and look-ups fail for a while.
    gw = GatewayProcess(tmp_path).start()
    try:
        with httpx.Client(base_url=gw.url, timeout=60) as client:
            client.post("/v1/sim/faults", json={"latency_ms": 1000}, headers=ADMIN)
            sending = [
                _in_background(
                    lambda n=n: client.post(
                        "/v1/signals", json=_resting_buy(f"wire-{n}"), headers=HEADERS
                    )
                )
                for n in range(4)
            ]
            _wait(
                lambda: client.get("/v1/status", headers=HEADERS).json()["orders"]["in_flight"] == 4
            )
            drill = {"lose_submit_answers": 4, "fail_lookups_s": 3}
            client.post("/v1/sim/faults", json=drill, headers=ADMIN)
            report = client.post("/v1/kill", json={"reason": "drill"}, headers=HEADERS).json()
            for thread, _ in sending:
                thread.join(30)
            assert report["failed"] == [] and report["cancelled"] == 4, report
            client.post("/v1/sim/faults", json={}, headers=ADMIN)
            _wait(
                lambda: client.get("/v1/status", headers=HEADERS).json()["orders"]["unknown"] == []
            )
            assert client.get("/v1/orders", headers=HEADERS).json() == []
    finally:
        assert gw.terminate() == 0
    # What the broker holds, read from its own file once the gateway is gone.
    with contextlib.closing(sqlite3.connect(gw.state_dir / "sim_broker.sqlite3")) as sim:
        statuses = [s for (s,) in sim.execute("SELECT status FROM orders")]
        counts = [c for (c,) in sim.execute("SELECT count FROM submit_counts")]
    assert sorted(statuses) == ["canceled"] * 4
    assert counts == [1, 1, 1, 1]
