"""kill -9 mid-stream, restart on the same state_dir: nothing acknowledged is lost, no order is
sent twice, and the halt state, failure counts and equity marks come back as they were.

The simulated broker keeps its own state file, so it plays the broker that kept running."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}


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
    gateway = {"brokers": {"simulated": {"state_file": "sim_broker.json"}}}
    risk = {"pre_trade": {"max_orders_per_second": 100000}}
    gw = GatewayProcess(tmp_path, gateway=gateway, risk=risk).start()
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

    again = GatewayProcess(tmp_path, gateway=gateway, risk=risk, port=gw.port).start()
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

    broker_state = json.loads((tmp_path / "sim_broker.json").read_text())
    counts = broker_state["submit_counts"]
    assert counts and max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}

    assert after["state"] == before["state"] == "active"
    assert after["failures"]["consecutive_by_strategy"]["flaky"] == 2
    assert after["risk"]["day_start_equity"] == before["risk"]["day_start_equity"]
    assert after["risk"]["peak_equity"] >= before["risk"]["peak_equity"]
    # The broker's book and the journal agree after recovery.
    assert after["reconciliation"]["positions"] == []
    assert after["reconciliation"]["adopted_orders"] == []
    assert after["reconciliation"]["lost_orders"] == []
