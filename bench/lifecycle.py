"""Order lifecycle benchmark: rest a limit, replace it, cancel it, N times, through the engine
(the journal on, SQLite WAL) into the simulated broker. Prints one JSON line with replace and
cancel latency (p50, p99), each measured from the call to its answer.

    python bench/lifecycle.py [--orders 2000] [--durability process|power]

A replace is the whole decision (gates, live quote, checks under the risk lock, the intent
committed, broker.replace, the order's new values and the decision committed); a cancel is the
intent committed, broker.cancel and the look-up of the order's state. When the simulated
broker has no replace yet, the simulated broker with the tests' in-place replace
(tests/fakes/replacing_sim.py) is measured instead, and the line says so (``broker``).
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
import gc
import json
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import write_config
from brokers.base import OrderChange
from brokers.errors import BrokerError
from brokers.simulated import SimulatedBroker
from gateway.config import load_config
from gateway.models import OrderReplace, Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.service import GatewayService
from tests.fakes.replacing_sim import ReplacingSim


async def sim_replaces() -> bool:
    """Whether the simulated broker itself replaces (its placeholder raises)."""
    sim = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.5)
    await sim.connect()
    try:
        await sim.replace("gw-probe", OrderChange(quantity=1))
    except NotImplementedError:
        return False
    except BrokerError:
        return True
    finally:
        await sim.close()
    return True


def quantile(values: list[float], q: float) -> float:
    return round(sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000, 4)


async def run(n: int, durability: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config(Path(tmp), durability)
        own = await sim_replaces()
        broker = None if own else ReplacingSim(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.5)
        service = GatewayService(
            load_config(path),
            environ={},
            metrics=GatewayMetrics(process_metrics=False),
            broker=broker,
        )
        await service.start()
        engine = service.engine
        replaces: list[float] = []
        cancels: list[float] = []
        outcomes: dict[str, int] = {}
        gc.collect()
        for i in range(n):
            body = {
                "signal_id": f"rest-{i}",
                "strategy": "bench",
                "symbol": "AAPL",
                "side": "buy",
                "quantity": 1,
                "order_type": "limit",
                "limit_price": 190,
            }
            decision = json.loads((await engine.submit_signal(Signal(**body))).decision_json)
            coid = decision["order"]["client_order_id"]
            patch = OrderReplace(signal_id=f"move-{i}", limit_price=189, quantity=2)
            t0 = time.perf_counter()
            answer = await engine.replaces.replace(coid, patch, None)
            replaces.append(time.perf_counter() - t0)
            kind = json.loads(answer.decision_json)["decision"]
            outcomes[kind] = outcomes.get(kind, 0) + 1
            t0 = time.perf_counter()
            await engine.cancels.cancel(coid, None, "bench")
            cancels.append(time.perf_counter() - t0)
            await asyncio.sleep(0)  # a request boundary: the broker's streams get their turn
        await service.stop()
    return {
        "benchmark": "lifecycle",
        "orders": n,
        "durability": durability,
        "broker": "simulated" if own else "simulated + tests/fakes/replacing_sim replace",
        "replace_outcomes": outcomes,
        "replace_p50_ms": quantile(replaces, 0.5),
        "replace_p99_ms": quantile(replaces, 0.99),
        "cancel_p50_ms": quantile(cancels, 0.5),
        "cancel_p99_ms": quantile(cancels, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--durability", choices=("process", "power"), default="process")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.orders, args.durability))))


if __name__ == "__main__":
    main()
