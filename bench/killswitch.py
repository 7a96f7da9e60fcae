"""Kill-switch benchmark: with N resting limit orders on the simulated broker (default 1,000),
how long the halt takes (durable: fsync of the halt state) and how long until every order is
cancelled. Prints one JSON line. Target: both under 100 ms.

    python bench/killswitch.py [--orders 1000] [--runs 5]
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_config
from gateway.models import Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.service import GatewayService


def write_config(directory: Path) -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["pre_trade"]["max_orders_per_second"] = 1_000_000
    risk["risk_management"]["protective_stop"] = "none"  # plain resting orders, as before
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    gateway = {
        "gateway": {"state_dir": "state", "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600}},
        "brokers": {"simulated": {"quotes": {"AAPL": [199.95, 200.05]}}},
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway))
    return path


async def one_run(n: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp)))
        service = GatewayService(config, environ={}, metrics=GatewayMetrics(process_metrics=False))
        await service.start()
        for i in range(n):
            # 1 share at 50: passive, rests; 1,000 of them stay inside every risk limit.
            await service.engine.submit_signal(
                Signal(
                    signal_id=f"rest-{i}",
                    strategy="bench",
                    symbol="AAPL",
                    side="buy",
                    quantity=1,
                    order_type="limit",
                    limit_price=50,
                )
            )
        assert len(await service.broker.open_orders()) == n
        report = await service.kill("benchmark", by="bench")
        left = len(await service.broker.open_orders())
        await service.stop()
    return float(report["halt_ms"]), float(report["elapsed_ms"]), left


async def run(n: int, runs: int) -> dict[str, object]:
    halts, totals, lefts = [], [], []
    for _ in range(runs):
        halt_ms, total_ms, left = await one_run(n)
        halts.append(halt_ms)
        totals.append(total_ms)
        lefts.append(left)
    return {
        "benchmark": "killswitch",
        "resting_orders": n,
        "runs": runs,
        "halt_ms_median": round(statistics.median(halts), 3),
        "halt_ms_max": round(max(halts), 3),
        "kill_ms_median": round(statistics.median(totals), 3),
        "kill_ms_max": round(max(totals), 3),
        "orders_left_open": max(lefts),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.orders, args.runs))))


if __name__ == "__main__":
    main()
