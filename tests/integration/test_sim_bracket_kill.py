"""kill -9 of a process holding the simulated broker keeps its brackets: a bracket whose entry
filled comes back with its stop and take profit working, and moving the market through the
stop closes the position and cancels the take profit; a bracket whose entry rests comes back
with its legs still held."""

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
from brokers.base import OrderRequest
from brokers.simulated import SimulatedBroker

def req(coid, side, **kw):
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=10,
                        time_in_force="gtc", **kw)

async def main():
    sim = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, tick_s=3600,
                          state_path=Path(sys.argv[1]))
    await sim.connect()
    done = await sim.submit_bracket(
        req("entry", "buy"),
        req("sl", "sell", order_type="stop", stop_price=195),
        req("tp", "sell", order_type="limit", limit_price=210),
    )
    resting = await sim.submit_bracket(
        req("e2", "buy", order_type="limit", limit_price=190),
        req("sl2", "sell", order_type="stop", stop_price=185),
        req("tp2", "sell", order_type="limit", limit_price=200),
    )
    print(json.dumps([o.model_dump(mode="json") for o in done + resting]), flush=True)
    time.sleep(600)  # blocks the loop on purpose: nothing runs until the kill

asyncio.run(main())
"""


def _run_and_kill(path: Path) -> list[Any]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "the child died before it reported"
        reported: list[Any] = json.loads(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return reported


async def test_brackets_survive_kill_9_and_the_stop_still_closes(tmp_path: Path) -> None:
    path = tmp_path / "sim_broker.sqlite3"
    reported = [BrokerOrder.model_validate(o) for o in _run_and_kill(path)]
    statuses = [(o.client_order_id, o.status) for o in reported]
    working, held = OrderStatus.ACCEPTED, OrderStatus.NEW
    assert statuses == [
        ("entry", OrderStatus.FILLED),
        ("sl", working),
        ("tp", working),
        ("e2", OrderStatus.ACCEPTED),
        ("sl2", held),
        ("tp2", held),
    ]
    sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=path)
    await sim.connect()
    try:
        assert await sim.adopt_bracket("entry", "sl", "tp") == reported[:3]
        assert await sim.adopt_bracket("e2", "sl2", "tp2") == reported[3:]
        assert sim.oco_group("sl") == ["sl", "tp"]
        _, changed = sim.set_quote("AAPL", 194.9, 195.0)  # through the stop
        assert {(o.client_order_id, o.status) for o in changed} == {
            ("sl", OrderStatus.FILLED),
            ("tp", OrderStatus.CANCELED),
        }
        assert await sim.positions() == []
        after = await sim.adopt_bracket("e2", "sl2", "tp2")
        assert [o.status for o in after] == [OrderStatus.ACCEPTED, held, held]
    finally:
        await sim.close()
