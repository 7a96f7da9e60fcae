"""Event-stream benchmark: the pipeline benchmark's signals, with and without subscribers on the
event stream, in one process, one after the other. Prints one JSON line.

    python bench/events.py [--signals 20000] [--subscribers 50] [--rounds 3]

Runs: ``none`` (nobody follows the stream), ``idle`` (N subscribers that follow a strategy
with no activity: every commit wakes the tailer, which reads and filters for them) and
``following`` (N subscribers that get every event of the run). Each subscriber runs the
route's own frame generator (``gateway.http.routes.events.frames``): the work the server does
for one, short of writing to its socket.
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
from gateway.config import load_config
from gateway.http.routes.events import frames
from gateway.models import Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.service import GatewayService


async def _consume(service: GatewayService, strategy: str | None, counts: list[int]) -> None:
    sub = service.feed.subscribe(None if strategy is None else frozenset({strategy}))
    async for chunk in frames(service.feed, sub, None):
        counts[0] += chunk.count("\nevent: ")


async def run(n: int, subscribers: int, follow: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), "process"))
        service = GatewayService(config, environ={}, metrics=GatewayMetrics(process_metrics=False))
        await service.start()
        engine = service.engine
        counts = [0]
        tasks = [asyncio.create_task(_consume(service, follow, counts)) for _ in range(subscribers)]
        await asyncio.sleep(0.05)
        for i in range(200):  # warm-up, not measured
            body = {"signal_id": f"w-{i}", "strategy": "bench", "symbol": "AAPL", "quantity": 1}
            await engine.submit_signal(
                Signal.model_validate({**body, "side": ("buy", "sell")[i % 2]})
            )
        latencies: list[float] = []
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(n):
            body = {"signal_id": f"b-{i}", "strategy": "bench", "symbol": "AAPL", "quantity": 1}
            signal = Signal.model_validate({**body, "side": ("buy", "sell")[i % 2]})
            t0 = time.perf_counter()
            await engine.submit_signal(signal)
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0)  # a request boundary: the streams get their turn
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        await asyncio.sleep(0.2)  # the subscribers catch up
        still_following = service.feed.subscribers
        await service.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        "signals_per_s": round(n / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 4),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 4),
        # CPU time of this process per signal: what a busy host's other processes leave alone.
        "cpu_us_per_signal": round(cpu / n * 1e6, 1),
        "subscribers": subscribers,
        "still_following": still_following,
        "events_delivered": counts[0],
    }


MODES: dict[str, tuple[bool, str | None]] = {
    "none": (False, None),
    "idle": (True, "nobody-trades-this"),
    "following": (True, None),
}


async def main_async(n: int, subscribers: int, rounds: int) -> dict[str, object]:
    # The modes take turns, round after round, and each reports its median round: a busy
    # host's noise falls on every mode alike.
    results: dict[str, list[dict[str, object]]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode, (subscribed, follow) in MODES.items():
            results[mode].append(await run(n, subscribers if subscribed else 0, follow))
    report: dict[str, object] = {"benchmark": "events", "signals": n, "rounds": rounds}
    for mode, runs in results.items():
        runs.sort(key=lambda r: float(r["signals_per_s"]))  # type: ignore[arg-type]
        report[mode] = runs[len(runs) // 2]
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=20000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.signals, args.subscribers, args.rounds))))


if __name__ == "__main__":
    main()
