"""Pipeline benchmark: N signals through the in-process pipeline into the simulated broker, with
the journal on (SQLite WAL, durability as configured). Prints one JSON line.

    python bench/pipeline.py [--signals 20000] [--durability process|power] [--concurrency 16]
                             [--repeat 3]

Each signal is validated (Signal model), priced, risk-checked, journaled (intent, then decision),
submitted to the simulated broker and its fill applied; latency is per signal, end to end.
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
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_config
from gateway.models import Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.service import GatewayService


def write_config(directory: Path, durability: str, sim_state: str = "file") -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["pre_trade"]["max_orders_per_second"] = 1_000_000  # measure the pipeline, not the limit
    # 16 producers alternate buys and sells of one share: a sell may be decided before the buy
    # it follows has filled (a short for a moment), which is not what this bench measures.
    risk["pre_trade"]["allow_short"] = True
    # Plain orders, comparable run to run: the shipped file's protective_stop: auto would make
    # every buy a bracket (bench/lifecycle.py and the tests cover those).
    risk["risk_management"]["protective_stop"] = "none"
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    gateway = {
        "gateway": {
            "state_dir": "state",
            "durability": durability,
            "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600},
        },
        "brokers": {
            "simulated": {
                "quotes": {"AAPL": [199.95, 200.05]},
                "tick_s": 0.5,
                # file (as shipped): the paper account's own SQLite commit per submit is in the
                # figures; memory: the venue in memory, as NautilusTrader's simulated exchange.
                "persist": sim_state == "file",
            }
        },
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway))
    return path


_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def _text(sql: str) -> str:
    # The trace callback sees the statement with its values bound: take them out again.
    text = _NUMBER.sub("?", _STRING.sub("?", " ".join(sql.split())))
    return text.replace("NULL", "?")[:100]


@dataclass
class SqlTrace:
    """Statements per signal by text (every row of an executemany counted), and the loop
    thread's CPU time spent in each (per execute/executemany call, with its commit's I/O)."""

    statements: list[str] = field(default_factory=list)  # as run, values bound
    spent_ns: dict[str, int] = field(default_factory=dict)
    undo: list[Callable[[], None]] = field(default_factory=list)


class _Timed:
    """Stands in for a sqlite3 connection: times each call, passes everything through."""

    def __init__(self, db: sqlite3.Connection, prefix: str, trace: SqlTrace) -> None:
        self._db, self._prefix, self._spent = db, prefix, trace.spent_ns
        self._keys: dict[str, str] = {}  # statement text -> its key (the texts are constants)

    def _call(self, method: Callable[..., Any], sql: str, args: tuple[Any, ...]) -> Any:
        started = time.thread_time_ns()
        try:
            return method(sql, *args)
        finally:
            spent = time.thread_time_ns() - started  # before the key's own cost
            key = self._keys.get(sql)
            if key is None:
                key = self._keys[sql] = self._prefix + _text(sql)
            self._spent[key] = self._spent.get(key, 0) + spent

    def execute(self, sql: str, *args: Any) -> Any:
        return self._call(self._db.execute, sql, args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._call(self._db.executemany, sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def trace_sql(service: GatewayService, trace: SqlTrace) -> None:
    """Count and time every statement the journal's and the simulated broker's connections
    run (what a signal costs in SQLite: the statements to cut are the ones listed here)."""

    def tracer(prefix: str) -> Callable[[str], None]:
        # Only kept during the run (read afterwards): the callback runs inside the timed call.
        return lambda sql: trace.statements.append(prefix + sql)

    driver: Any = service.journal._db
    state: Any = getattr(service.broker, "_state", None)
    for holder, attr, prefix in ((driver, "db", "journal: "), (state, "_db", "sim:     ")):
        db = getattr(holder, attr, None)
        if not isinstance(db, sqlite3.Connection):
            continue  # another backend, or the simulated broker in memory
        db.set_trace_callback(tracer(prefix))
        setattr(holder, attr, _Timed(db, prefix, trace))
        trace.undo.append(
            lambda h=holder, a=attr, d=db: (d.set_trace_callback(None), setattr(h, a, d))
        )


def print_trace(trace: SqlTrace, n: int) -> None:
    counts: dict[str, int] = {}
    for statement in trace.statements:
        key = statement[:9] + _text(statement[9:])
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    spent = sum(trace.spent_ns.values())
    print(
        f"statements per signal (of {n} signals): {total / n:.2f}; "
        f"loop CPU in them: {spent / n / 1000:.1f} us per signal",
        file=sys.stderr,
    )
    print("  per signal   us/signal  statement", file=sys.stderr)
    for sql, count in sorted(counts.items(), key=lambda item: -item[1]):
        micros = trace.spent_ns.get(sql, 0) / n / 1000
        print(f"  {count / n:10.3f}  {micros:10.1f}  {sql}", file=sys.stderr)


async def run(
    n: int,
    durability: str,
    concurrency: int = 1,
    sim_state: str = "file",
    trace: SqlTrace | None = None,
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), durability, sim_state))
        service = GatewayService(config, environ={}, metrics=GatewayMetrics(process_metrics=False))
        await service.start()
        engine = service.engine
        bodies = [
            {
                "signal_id": f"bench-{i}",
                "strategy": "bench",
                "symbol": "AAPL",
                "side": "buy" if i % 2 == 0 else "sell",
                "quantity": 1,
            }
            for i in range(n)
        ]
        # Warm up caches and code paths; not measured.
        for i in range(200):
            await engine.submit_signal(
                Signal.model_validate(
                    {**bodies[0], "signal_id": f"w-{i}", "side": ("buy", "sell")[i % 2]}
                )
            )
        latencies: list[float] = []
        accepted = 0
        refused: dict[str, int] = {}
        queue = iter(bodies)

        async def producer() -> None:
            # One strategy connection: sends its next signal when the last one is decided.
            nonlocal accepted
            for body in queue:
                t0 = time.perf_counter()
                decision = (await engine.submit_signal(Signal.model_validate(body))).decision_json
                latencies.append(time.perf_counter() - t0)
                accepted += '"decision":"accepted"' in decision
                if '"decision":"accepted"' not in decision:
                    for code in json.loads(decision)["reasons"]:
                        refused[code["code"]] = refused.get(code["code"], 0) + 1
                # A request boundary, as between two HTTP requests: the broker's quote and
                # order streams get their turn on the loop.
                await asyncio.sleep(0)

        if trace is not None:
            trace_sql(service, trace)
        gc.collect()
        started, cpu_started = time.perf_counter(), time.thread_time()
        await asyncio.gather(*(producer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.thread_time() - cpu_started
        if trace is not None:
            for undo in trace.undo:
                undo()
        await service.stop()
    latencies.sort()
    return {
        "benchmark": "pipeline",
        "signals": n,
        "accepted": accepted,
        "refused": refused,
        "durability": durability,
        "concurrency": concurrency,
        "sim_state": sim_state,
        "signals_per_s": round(n / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 4),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 4),
        "max_ms": round(latencies[-1] * 1000, 4),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 4),
        # The event loop thread's own CPU time: what a signal costs, even on a busy machine
        # (where the wall-clock figures above also count the time others took the CPU).
        "loop_cpu_us_per_signal": round(cpu / n * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=20000)
    parser.add_argument("--durability", choices=("process", "power"), default="process")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="signals in flight (strategy connections)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs; the fastest is printed (a noisy machine)"
    )
    parser.add_argument(
        "--sim-state",
        choices=("file", "memory"),
        default="file",
        help="the simulated broker's account: its SQLite file (as shipped) or memory",
    )
    parser.add_argument(
        "--trace-sql",
        action="store_true",
        help="count and time the statements per signal by text (to stderr; slows the run)",
    )
    args = parser.parse_args()
    trace = SqlTrace() if args.trace_sql else None
    runs = [
        asyncio.run(run(args.signals, args.durability, args.concurrency, args.sim_state, trace))
        for _ in range(1 if trace is not None else max(1, args.repeat))
    ]
    if trace is not None:
        print_trace(trace, args.signals)
    print(json.dumps(max(runs, key=lambda r: cast(int, r["signals_per_s"]))))


if __name__ == "__main__":
    main()
