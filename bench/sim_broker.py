"""What persisting the simulated paper account costs per submit: the same submits against an
in-memory broker and against one keeping its account in SQLite (WAL, synchronous=NORMAL, one
transaction per change). Half the orders fill at once (cash, position, order, count, id), half
rest (order, count, id); the resting ones are cancelled every 100 submits (untimed), so the book
stays small. Prints one JSON line: microseconds per submit, median and p99, for
each, and the difference.

    python bench/sim_broker.py [--submits 5000] [--runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would hide the standard library's http package from a script run from this
# folder (the script's folder comes first on sys.path): take the folder off the path first.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import asyncio
import json
import statistics
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brokers.base import OrderRequest
from brokers.simulated import SimulatedBroker

BATCH = 100


def requests(n: int) -> list[OrderRequest]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(
                OrderRequest(
                    client_order_id=f"rest-{i}",
                    symbol="AAPL",
                    side="buy",
                    quantity=1,
                    order_type="limit",
                    limit_price=1,
                )
            )
        else:
            side = "buy" if i % 4 == 0 else "sell"  # the position goes 1, 0, 1, 0: no shorts
            out.append(
                OrderRequest(client_order_id=f"mkt-{i}", symbol="AAPL", side=side, quantity=1)
            )
    return out


async def one_run(n: int, state_path: Path | None) -> list[float]:
    sim = SimulatedBroker(
        initial_cash=10**9, quotes={"AAPL": (199.95, 200.05)}, tick_s=3600, state_path=state_path
    )
    await sim.connect()
    timings = []
    try:
        for i, request in enumerate(requests(n), 1):
            started = time.perf_counter()
            await sim.submit(request)
            timings.append((time.perf_counter() - started) * 1e6)
            if i % BATCH == 0:
                await (
                    sim.cancel_all()
                )  # untimed: keeps the resting book (and its O(open) scans) small
    finally:
        await sim.close()
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


async def main(n: int, runs: int) -> dict[str, object]:
    memory: list[float] = []
    sqlite: list[float] = []
    for _ in range(runs):
        memory += await one_run(n, None)
        with tempfile.TemporaryDirectory() as tmp:
            sqlite += await one_run(n, Path(tmp) / "sim_broker.sqlite3")
    in_memory, persisted = summary(memory), summary(sqlite)
    return {
        "bench": "sim_broker_submit",
        "submits": n * runs,
        "memory": in_memory,
        "sqlite": persisted,
        "persistence_cost_median_us": round(persisted["median_us"] - in_memory["median_us"], 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.submits, args.runs))))
