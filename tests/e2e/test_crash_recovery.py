"""kill -9 mid-stream, restart on the same state_dir: nothing acknowledged is lost, no order is
sent twice, and the halt state, failure counts and equity marks come back as they were.

The simulated broker keeps its account in state_dir/sim_broker.sqlite3 (the default), so it
plays the broker that kept running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx

from brokers.simulated import SimulatedBroker
from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _stream(url: str, client_no: int, received: dict[str, str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=5.0) as client:
        i = 0
        while not stop.is_set():
            body = {
                "signal_id": f"c{client_no}-{i}",
                "strategy": f"strat{client_no}",
                "symbol": "AAPL",
                "side": "buy" if i % 2 == 0 else "sell",
                "quantity": 1,
            }
            if i % 5 == 4:
                body.update(order_type="limit", limit_price=190)  # some orders rest
            try:
                response = client.post("/v1/signals", json=body)
            except httpx.HTTPError:
                return  # the gateway died under us: nothing was acknowledged for this one
            if response.status_code == 200:
                received[body["signal_id"]] = response.text
            i += 1


def test_sigkill_mid_stream_loses_nothing(tmp_path: Path) -> None:
    risk = {"pre_trade": {"max_orders_per_second": 100000}}
    gw = GatewayProcess(tmp_path, risk=risk).start()
    url = gw.url
    with httpx.Client(base_url=url, headers=HEADERS) as client:
        for _ in range(2):
            client.post("/v1/outcomes", json={"strategy": "flaky", "ok": False, "error": "x"})
        before = client.get("/v1/status").json()

    received: dict[str, str] = {}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_stream, args=(url, n, received, stop), daemon=True)
        for n in range(4)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(received) < 120 and time.monotonic() < deadline:
        time.sleep(0.01)
    gw.kill()  # SIGKILL while the clients are still sending
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(received) >= 120

    # Every decision a client received is in the journal, byte for byte.
    db = sqlite3.connect(gw.state_dir / "journal.sqlite3")
    stored = dict(db.execute("SELECT signal_id, decision FROM signals").fetchall())
    db.close()
    for signal_id, text in received.items():
        assert stored.get(signal_id) == text, signal_id

    again = GatewayProcess(tmp_path, risk=risk, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS) as client:
            after = client.get("/v1/status").json()
            # A replay answers exactly what the client was told before the crash.
            for signal_id in list(received)[:20]:
                n, i = signal_id[1:].split("-")
                replay = {
                    "signal_id": signal_id,
                    "strategy": f"strat{n}",
                    "symbol": "AAPL",
                    "side": "buy" if int(i) % 2 == 0 else "sell",
                    "quantity": 1,
                }
                if int(i) % 5 == 4:
                    replay.update(order_type="limit", limit_price=190)
                response = client.post("/v1/signals", json=replay)
                assert response.text == received[signal_id], signal_id
    finally:
        again.terminate()

    with contextlib.closing(sqlite3.connect(gw.state_dir / "sim_broker.sqlite3")) as sim:
        counts = dict(sim.execute("SELECT client_order_id, count FROM submit_counts").fetchall())
        broker_qty = sim.execute("SELECT qty FROM positions WHERE symbol = 'AAPL'").fetchone()
        broker_open = sim.execute("SELECT count(*) FROM orders WHERE status = 'accepted'")
        resting_at_broker = broker_open.fetchone()[0]
    assert counts and max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}

    # The broker's position is exactly what the accepted orders filled, and every accepted
    # order that rests still rests there: nothing lost, nothing doubled, nothing invented.
    with contextlib.closing(sqlite3.connect(gw.state_dir / "journal.sqlite3")) as journal:
        decided = [json.loads(d) for (d,) in journal.execute("SELECT decision FROM signals")]
    orders = [d["order"] for d in decided if d["decision"] == "accepted"]
    filled = sum(
        Decimal(str(o["quantity"])) * (1 if o["side"] == "buy" else -1)
        for o in orders
        if o["status"] == "filled"
    )
    assert {o["status"] for o in orders} <= {"filled", "accepted"}
    assert Decimal(broker_qty[0] if broker_qty else 0) == filled
    assert resting_at_broker == len([o for o in orders if o["status"] == "accepted"]) > 0

    assert after["state"] == before["state"] == "active"
    assert after["failures"]["consecutive_by_strategy"]["flaky"] == 2
    assert after["risk"]["day_start_equity"] == before["risk"]["day_start_equity"]
    assert after["risk"]["peak_equity"] >= before["risk"]["peak_equity"]
    # The broker's book and the journal agree after recovery.
    assert after["reconciliation"]["positions"] == []
    assert after["reconciliation"]["adopted_orders"] == []
    assert after["reconciliation"]["lost_orders"] == []


def _market_moves_while_down(state_dir: Path) -> None:
    """The broker kept running while the gateway was down: its market went through the resting
    buys at 190, then through the resting sells at 210, and came back."""

    async def move() -> None:
        broker = SimulatedBroker(
            quotes={"AAPL": (199.95, 200.05)}, state_path=state_dir / "sim_broker.sqlite3"
        )
        await broker.connect()
        for bid, ask in ((189.0, 189.1), (210.5, 210.6), (199.95, 200.05)):
            broker.set_quote("AAPL", bid, ask)
        await broker.close()

    asyncio.run(move())


def test_sigkill_with_lost_answers_then_fills_while_down_counts_every_fill_once(
    tmp_path: Path,
) -> None:
    risk = {"pre_trade": {"max_orders_per_second": 100000, "allow_short": True}}
    gw = GatewayProcess(tmp_path, risk=risk).start()
    drill = {"latency_ms": 20, "lose_submit_answers": 3}
    httpx.post(f"{gw.url}/v1/sim/faults", json=drill, headers=ADMIN)
    received: dict[str, str] = {}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_stream, args=(gw.url, n, received, stop), daemon=True)
        for n in range(4)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(received) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    gw.kill()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    _market_moves_while_down(gw.state_dir)

    again = GatewayProcess(tmp_path, risk=risk, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS) as client:
            deadline = time.monotonic() + 30
            while client.get("/v1/status").json()["orders"]["unknown"]:
                assert time.monotonic() < deadline, "orders of unknown fate never settled"
                time.sleep(0.1)
            status = client.get("/v1/status").json()
            positions = {p["symbol"]: p["qty"] for p in client.get("/v1/positions").json()}
            open_orders = {o["client_order_id"] for o in client.get("/v1/orders").json()}
    finally:
        again.terminate()
    assert status["state"] == "active", status["halt"]
    assert status["reconciliation"]["positions"] == []
    with contextlib.closing(sqlite3.connect(gw.state_dir / "sim_broker.sqlite3")) as sim:
        at_broker = {s: float(q) for s, q in sim.execute("SELECT symbol, qty FROM positions")}
        resting = {
            c
            for (c,) in sim.execute("SELECT client_order_id FROM orders WHERE status = 'accepted'")
        }
        counts = [c for (c,) in sim.execute("SELECT count FROM submit_counts")]
    assert positions == at_broker  # every fill counted once, those made while down included
    assert open_orders == resting
    assert max(counts) == 1
