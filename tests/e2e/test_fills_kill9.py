"""kill -9 of ``gateway serve`` mid-flood, with the broker's market moving while it is down, then
a restart: the fills a strategy follows add up to the broker's position.

A market order fills at submit; its fill row and ``fill`` event follow through the broker's event
queue, so a kill between the two used to lose the fill for good (and a resting order that filled
while the gateway was down never had one). After the restart: per symbol, the journaled fills
(GET /v1/fills) add up to the broker's position; each order's filled quantity is the sum of its
fills; the stream's fill events (after=0) are exactly those fills."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess
from tests.e2e.test_crash_recovery import _market_moves_while_down

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
CLIENTS = 16


def _flood(url: str, client_no: int, acknowledged: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=5.0) as client:
        i = 0
        while not stop.is_set():
            body: dict[str, Any] = {
                "signal_id": f"f{client_no}-{i}",
                "strategy": f"strat{client_no % 4}",
                "symbol": "AAPL",
                "side": "buy" if i % 2 == 0 else "sell",
                "quantity": 1 + i % 3,
            }
            if i % 5 == 4:
                body.update(order_type="limit", limit_price=190, time_in_force="gtc")
            try:
                response = client.post("/v1/signals", json=body)
            except httpx.HTTPError:
                return  # the gateway died under us
            if response.status_code == 200:
                acknowledged.append(body["signal_id"])
            i += 1


def _orders_not_adding_up(state_dir: Path, filled_by: str = "journal.sqlite3") -> int:
    """Orders whose journaled fills do not add up to their filled quantity, as the journal
    (or, with ``filled_by="sim_broker.sqlite3"``, the broker) has it."""
    with contextlib.closing(sqlite3.connect(state_dir / filled_by)) as db:
        filled = dict(db.execute("SELECT client_order_id, filled_quantity FROM orders"))
    with contextlib.closing(sqlite3.connect(state_dir / "journal.sqlite3")) as db:
        sums: dict[str, Decimal] = {}
        for coid, qty in db.execute("SELECT client_order_id, quantity FROM fills"):
            sums[coid] = sums.get(coid, Decimal(0)) + Decimal(qty)
    return sum(1 for coid, qty in filled.items() if Decimal(qty) != sums.get(coid, Decimal(0)))


def _stream_fills(url: str, last_seq: int) -> list[dict[str, Any]]:
    """The fill events of GET /v1/events?after=0, read until the journal's last event."""
    fills: list[dict[str, Any]] = []
    seq, kind = 0, ""
    with (
        httpx.Client(base_url=url, headers=HEADERS, timeout=10.0) as client,
        client.stream("GET", "/v1/events", params={"after": 0}) as answer,
    ):
        for line in answer.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "fill":
                fills.append(json.loads(line[6:]))
            if line == "" and seq >= last_seq:
                break
    return fills


def test_fills_add_up_to_the_broker_position_after_kill9(tmp_path: Path) -> None:
    risk = {"pre_trade": {"max_orders_per_second": 100000}}
    gw = GatewayProcess(tmp_path, risk=risk).start()
    acknowledged: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_flood, args=(gw.url, n, acknowledged, stop), daemon=True)
        for n in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 400 and time.monotonic() < deadline:
        time.sleep(0.005)
    gw.kill()  # SIGKILL mid-flood: fill events still in the broker's queue die with it
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acknowledged) >= 400
    _market_moves_while_down(gw.state_dir)  # resting buys at 190 fill while it is down
    short_before = _orders_not_adding_up(gw.state_dir, "sim_broker.sqlite3")

    again = GatewayProcess(tmp_path, risk=risk, port=gw.port).start()
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS, timeout=10.0) as client:
            fills = client.get("/v1/fills").json()
        with contextlib.closing(sqlite3.connect(again.state_dir / "journal.sqlite3")) as db:
            last_seq = db.execute("SELECT MAX(seq) FROM stream").fetchone()[0]
        streamed = _stream_fills(again.url, last_seq)
    finally:
        again.terminate()

    assert short_before > 0  # fills to recover (the resting buys the market move filled)
    assert _orders_not_adding_up(again.state_dir) == 0
    assert _orders_not_adding_up(again.state_dir, "sim_broker.sqlite3") == 0
    with contextlib.closing(sqlite3.connect(again.state_dir / "sim_broker.sqlite3")) as sim:
        positions = {s: Decimal(q) for s, q in sim.execute("SELECT symbol, qty FROM positions")}
    by_symbol: dict[str, Decimal] = {}
    for f in fills:
        signed = Decimal(str(f["quantity"])) * (1 if f["side"] == "buy" else -1)
        by_symbol[f["symbol"]] = by_symbol.get(f["symbol"], Decimal(0)) + signed
    assert {s: q for s, q in by_symbol.items() if q} == positions
    assert len({(f["client_order_id"], f["fill_id"]) for f in fills}) == len(fills)
    assert [(f["fill_id"], f["quantity"]) for f in streamed] == [
        (f["fill_id"], f["quantity"]) for f in fills
    ]
