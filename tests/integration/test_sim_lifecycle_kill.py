"""kill -9 of a process holding the simulated broker loses nothing its calls answered: a
replaced order, a partly filled one, a triggered stop_limit and an OCO group come back from
the state file exactly as the dead process last reported them, and go on from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from brokers.base import BrokerOrder, OrderStatus
from brokers.simulated import SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05)}

_CHILD = """
import asyncio, json, sys, time
from pathlib import Path
from brokers.base import OrderChange, OrderRequest
from brokers.simulated import SimulatedBroker

def req(coid, side, qty, **kw):
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty,
                        time_in_force="gtc", **kw)

async def main():
    sim = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, tick_s=3600,
                          state_path=Path(sys.argv[1]), fill_quantity_per_tick=4)
    await sim.connect()
    await sim.submit(req("entry", "buy", 10))               # 4 now
    sim.set_quote("AAPL", 199.95, 200.05)                   # 8
    await sim.submit(req("rest", "buy", 5, order_type="limit", limit_price=190))
    await sim.replace("rest", OrderChange(quantity=6, limit_price=191))
    await sim.submit(req("bsl", "buy", 2, order_type="stop_limit", stop_price=201,
                         limit_price=201.5))
    await sim.submit(req("sl", "sell", 8, order_type="stop", stop_price=195))
    await sim.submit(req("tp", "sell", 8, order_type="limit", limit_price=210))
    await sim.link_oco(["sl", "tp"])
    sim.set_quote("AAPL", 201.9, 202.0)  # triggers bsl (above its limit); entry fills to 10
    orders = {o.client_order_id: o.model_dump(mode="json") for o in await sim.open_orders()}
    entry = await sim.get_order("entry")
    orders["entry"] = entry.model_dump(mode="json")
    print(json.dumps(orders), flush=True)
    time.sleep(600)  # blocks the loop on purpose: nothing runs until the kill

asyncio.run(main())
"""


def _run_and_kill(path: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "the child died before it reported"
        reported: dict[str, Any] = json.loads(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return reported


async def test_the_lifecycle_state_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "sim_broker.sqlite3"
    reported = {c: BrokerOrder.model_validate(o) for c, o in _run_and_kill(path).items()}
    sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=path, fill_quantity_per_tick=4)
    await sim.connect()
    try:
        for coid, before in reported.items():
            assert await sim.get_order(coid) == before, coid
        assert reported["entry"].status is OrderStatus.FILLED
        assert reported["rest"].quantity == 6
        assert sim.oco_group("sl") == ["sl", "tp"]
        # It goes on where the dead process stopped: bsl stayed triggered (the ask is below its
        # stop now), the group still holds.
        sim.set_quote("AAPL", 200.8, 200.9)
        bsl = await sim.get_order("bsl")
        assert bsl is not None and bsl.filled_quantity == 2
        sim.set_quote("AAPL", 210.0, 210.1)
        tp, sl = await sim.get_order("tp"), await sim.get_order("sl")
        assert tp is not None and sl is not None
        assert (tp.filled_quantity, tp.broker_order_id) == (4, reported["tp"].broker_order_id)
        assert (sl.quantity, sl.status) == (4, OrderStatus.ACCEPTED)  # shrunk to what tp has left
    finally:
        await sim.close()
