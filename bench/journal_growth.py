"""Growth benchmark: start time and resident memory of the gateway over a journal holding N
signals, against an empty journal. Prints one JSON line.

    python bench/journal_growth.py [--sizes 1000000,5000000] [--keep DIR]

Each journal is built once, straight into SQLite (the gateway's own schema, then bulk inserts in
one transaction): per signal, its row with the body and the exact decision JSON, its order
(filled), its fill and its decision event on the stream, over trading days of 20,000 signals,
as months of trading leave them. Each start runs in a fresh process (so its memory is its own):
the service is built and started on the simulated broker, then the process reports the start's
wall and CPU time, VmRSS and VmHWM (peak) from /proc/self/status, and the time to answer a
replay of the journal's first signal_id (older than any in-memory window) and a new signal.
The first start after a build is not measured (it creates the journal's indexes and warms the
page cache; it starts without the journal's seal, so it runs the full integrity check, as any
start after a crash does: reported as ``unsealed_start_s``): the next ones, sealed, are.

Two start times, each against the empty journal's: ``start_s`` is the service's own start in
process (GatewayService built and started); ``process_ready_s`` is what an operator waits for:
``gateway serve`` exec'd in a fresh process (Python's imports included) until its first 200 on
/readyz, with that process's VmRSS and VmHWM. Targets: both start times and memory within 2x of
the empty journal's. ``--profile DIR`` writes a cProfile of each in-process start there.
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
import cProfile
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_DAY = 20_000
CHUNK = 50_000
DECISION = (
    '{{"signal_id":"{sid}","decision":"accepted","reasons":[],"order":{{"client_order_id":'
    '"{coid}","broker_order_id":"sim-{n}","status":"filled","symbol":"AAPL","side":"{side}",'
    '"quantity":1,"price":200.05,"notional":200.05,"quote_time":"{at}","avg_fill_price":200.05,'
    '"legs":[]}},"risk":{{"equity":100000.0,"position_risk":6.0015,"heat_before":0.0,'
    '"heat_after":0.00006}}}}'
)
BODY = '{{"signal_id":"{sid}","strategy":"momentum","symbol":"AAPL","side":"{side}","quantity":1}}'


def write_config(directory: Path, state_dir: Path, port: int = 0) -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    config = {
        "gateway": {
            "state_dir": str(state_dir),
            "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600},
            "api": {"host": "127.0.0.1", "port": port},
        },
        "brokers": {"simulated": {"quotes": {"AAPL": [199.95, 200.05]}, "persist": False}},
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _digest(i: int, side: str) -> str:
    """The real body hash of the first signal (the one the child replays), a stand-in of the
    same shape for the others (computing millions would only slow the build)."""
    if i:
        return f"{i:032x}"
    from gateway.models import Signal
    from gateway.pipeline.ids import body_hash

    return body_hash(Signal.model_validate_json(BODY.format(sid=f"s-{i:08d}", side=side)))


def _rows(n: int) -> Iterator[tuple[tuple[Any, ...], ...]]:
    start = datetime(2026, 1, 1, 13, 30, tzinfo=UTC)
    for i in range(n):
        at = (start + timedelta(days=i // PER_DAY, microseconds=(i % PER_DAY) * 1000)).isoformat()
        sid, coid, side = f"s-{i:08d}", f"gw-{i:024x}", ("buy", "sell")[i % 2]
        digest = _digest(i, side)
        decision = DECISION.format(sid=sid, coid=coid, n=i, side=side, at=at)
        yield (
            (sid, digest, BODY.format(sid=sid, side=side), "momentum", "AAPL", coid, decision,
             "accepted", at, at),
            (coid, sid, f"sim-{i}", "AAPL", side, "1", "market", None, "day", "200.05", "filled",
             "1", "200.05", 0, 1, at, at, "momentum"),
            (coid, f"f-{i}", "AAPL", side, "1", "200.05", at),
            ("decision", "momentum", decision, at),
        )  # fmt: skip


def build(path: Path, n: int) -> float:
    """A journal of ``n`` decided signals; returns the seconds it took."""
    from gateway.store.journal import Journal

    started = time.perf_counter()
    Journal(path).close()  # the schema, at this gateway's version
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    rows = _rows(n)
    while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
        db.executemany("INSERT INTO signals VALUES (?,?,?,?,?,?,?,?,?,?)", [r[0] for r in chunk])
        db.executemany(
            "INSERT INTO orders (client_order_id, signal_id, broker_order_id, symbol, side, "
            "quantity, order_type, limit_price, time_in_force, valued_at, status, "
            "filled_quantity, avg_fill_price, external, submit_count, created_at, updated_at, "
            "strategy) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [r[1] for r in chunk],
        )
        db.executemany(
            "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, at) "
            "VALUES (?,?,?,?,?,?,?)",
            [r[2] for r in chunk],
        )
        db.executemany(
            "INSERT INTO stream (type, strategy, payload, at) VALUES (?,?,?,?)",
            [r[3] for r in chunk],
        )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - started


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def _child(state_dir: Path, profile: Path | None) -> dict[str, Any]:
    from gateway.config import load_config
    from gateway.models import Signal
    from gateway.ops.metrics import GatewayMetrics
    from gateway.service import GatewayService

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), state_dir))
        profiler = cProfile.Profile() if profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        service = GatewayService(config, environ={}, metrics=GatewayMetrics())
        await service.start()
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if profiler and profile:
            profiler.dump_stats(profile)
        rss, peak = _status_kb("VmRSS"), _status_kb("VmHWM")
        body = {"strategy": "momentum", "symbol": "AAPL", "side": "buy", "quantity": 1}
        t0 = time.perf_counter()
        first = await service.engine.submit_signal(Signal(signal_id="s-00000000", **body))
        replay_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        await service.engine.submit_signal(Signal(signal_id=f"new-{time.time_ns()}", **body))
        new_ms = (time.perf_counter() - t0) * 1000
        await service.stop()
    return {
        "start_s": round(wall, 3),
        "start_cpu_s": round(cpu, 3),
        "rss_mb": round(rss / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "old_replay_ms": round(replay_ms, 3) if first.replayed else None,
        "new_signal_ms": round(new_ms, 3),
    }


def measure(state_dir: Path, profile: Path | None = None) -> dict[str, Any]:
    extra = ["--profile-to", str(profile)] if profile else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(state_dir), *extra],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure_process(state_dir: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """``gateway serve`` from exec to its first 200 on /readyz: the start an operator waits for,
    Python's imports included. Stopped with SIGTERM (a clean stop) afterwards."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), state_dir, port)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_TOKEN": "bench-strategy"}
        env |= {"GATEWAY_ADMIN_TOKEN": "bench-admin", "GATEWAY_RESUME_AUTH_CODE": "bench"}
        command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)]
        started = time.perf_counter()
        quiet = subprocess.DEVNULL
        proc = subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet)
        try:
            while not _ready(f"http://127.0.0.1:{port}/readyz"):
                if proc.poll() is not None or time.perf_counter() - started > timeout_s:
                    raise RuntimeError(f"gateway serve did not start in {state_dir}")
                time.sleep(0.005)
            ready = time.perf_counter() - started
            rss, peak = _proc_kb(proc.pid, "VmRSS"), _proc_kb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(60)
    return {
        "process_ready_s": round(ready, 3),
        "process_rss_mb": round(rss / 1024, 1),
        "process_peak_rss_mb": round(peak / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--keep", type=Path, help="build journals here and reuse them")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of each start here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.profile_to))))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        line: dict[str, Any] = {"benchmark": "journal_growth", "load_average": os.getloadavg()}
        line["best_of"] = REPEAT
        (base / "empty").mkdir(parents=True, exist_ok=True)
        line["empty"] = empty = _figures(base / "empty", args.profile, "empty")
        for n in sizes:
            line[str(n)] = _size(base, n, empty, args.profile)
    print(json.dumps(line))


REPEAT = 3


def _figures(state: Path, profile: Path | None, name: str) -> dict[str, Any]:
    """The best of ``REPEAT`` starts of each kind (the fastest, with its own memory figures):
    other work on the host only ever adds time, so the minimum is the start's own cost."""
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    runs = [measure(state, profile / f"{name}.prof" if profile else None) for _ in range(REPEAT)]
    figures = min(runs, key=lambda run: float(run["start_s"]))
    # The process's start is mostly Python's imports, the noisiest part on a shared host.
    processes = [measure_process(state) for _ in range(REPEAT * 2)]
    return figures | min(processes, key=lambda run: float(run["process_ready_s"]))


def _size(base: Path, n: int, empty: dict[str, Any], profile: Path | None) -> dict[str, Any]:
    state = base / f"n{n}"
    journal = state / "journal.sqlite3"
    built = None
    if not journal.exists():
        state.mkdir(parents=True, exist_ok=True)
        built = round(build(journal, n), 1)
    # The first start runs without the journal's seal, as after a crash: the full integrity
    # check (and after a build, the indexes and a warm page cache). Reported, not compared.
    (state / "journal.sqlite3.seal").unlink(missing_ok=True)
    unsealed = measure(state)["start_s"]
    figures = _figures(state, profile, str(n))
    figures["unsealed_start_s"] = unsealed
    figures["journal_mb"] = round(journal.stat().st_size / 2**20)
    figures["built_in_s"] = built
    for key in ("start_s", "process_ready_s", "rss_mb", "process_rss_mb", "peak_rss_mb"):
        figures[key.removesuffix("_s").removesuffix("_mb") + "_ratio"] = round(
            figures[key] / empty[key], 2
        )
    return figures


if __name__ == "__main__":
    main()
