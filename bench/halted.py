"""Halted-gateway benchmark: after N prior halts (default 1,000, through POST /v1/halt with
different reasons), how many blocked signals per second a real `gateway serve` process answers,
and the /healthz latency (p50, p99) measured while that flood of blocked signals runs.
Prints one JSON line.

    python bench/halted.py [--halts 1000] [--clients 4] [--seconds 10]

The server is a real process (started like tests/e2e/process.py does) on the simulated broker;
the clients are httpx, in this process, each sending its next signal when the last is answered.
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
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
STRATEGY_TOKEN = "bench-strategy-token"
ADMIN_TOKEN = "bench-admin-token"
HEALTHZ_INTERVAL_S = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, port: int) -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["pre_trade"]["max_orders_per_second"] = 1_000_000  # measure the halt, not the limit
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    gateway = {
        "gateway": {
            "mode": "paper",
            "broker": "simulated",
            "state_dir": "state",
            "risk_config": "risk_management.yaml",
            "api": {"host": "127.0.0.1", "port": port},
            "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600},
        },
        "brokers": {"simulated": {"quotes": {"AAPL": [199.95, 200.05]}}},
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway))
    return path


@contextmanager
def gateway_process(directory: Path) -> Iterator[str]:
    """`python -m gateway.cli serve` as a child process; yields its base URL once ready."""
    port = free_port()
    config = write_config(directory, port)
    env = {
        **os.environ,
        "GATEWAY_TOKEN": STRATEGY_TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("NOTIFY_SOCKET", None)
    url = f"http://127.0.0.1:{port}"
    with (directory / "gateway.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}; see its log")
            try:
                if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway not ready in 60 s")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def prior_halts(client: httpx.AsyncClient, n: int) -> float:
    """N halts with different reasons (the first halts, the rest repeat); returns seconds."""
    started = time.perf_counter()
    for i in range(n):
        answer = await client.post("/v1/halt", json={"reason": f"bench halt {i}"})
        answer.raise_for_status()
    return time.perf_counter() - started


async def flood(
    url: str, clients: int, seconds: float
) -> tuple[int, dict[str, int], float, list[float]]:
    """Blocked signals from `clients` connections for `seconds`, /healthz probed meanwhile."""
    headers = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
    decisions: dict[str, int] = {}
    healthz_ms: list[float] = []
    stop = asyncio.Event()

    async def sender(index: int) -> int:
        sent = 0
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            while not stop.is_set():
                body = {
                    "signal_id": f"flood-{index}-{sent}",
                    "strategy": "bench",
                    "symbol": "AAPL",
                    "side": "buy",
                    "quantity": 1,
                }
                answer = await client.post("/v1/signals", json=body)
                kind = answer.json().get("decision", f"http_{answer.status_code}")
                decisions[kind] = decisions.get(kind, 0) + 1
                sent += 1
        return sent

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                healthz_ms.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(HEALTHZ_INTERVAL_S)

    started = time.perf_counter()
    tasks = [asyncio.create_task(sender(i)) for i in range(clients)]
    probe = asyncio.create_task(prober())
    await asyncio.sleep(seconds)
    stop.set()
    sent = sum(await asyncio.gather(*tasks))
    elapsed = time.perf_counter() - started
    await probe
    return sent, decisions, elapsed, healthz_ms


async def run(halts: int, clients: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, gateway_process(Path(tmp)) as url:
        headers = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            halts_s = await prior_halts(client, halts)
            status = (await client.get("/v1/status")).json()
        sent, decisions, elapsed, healthz_ms = await flood(url, clients, seconds)
        halt_file = Path(tmp) / "state" / "halt_state.json"
        halt_file_bytes = halt_file.stat().st_size if halt_file.exists() else 0
    if status["state"] != "halted":
        raise RuntimeError(f"gateway not halted after the prior halts: {status['state']}")
    return {
        "benchmark": "halted",
        "prior_halts": halts,
        "prior_halts_s": round(halts_s, 3),
        "halt_file_bytes": halt_file_bytes,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "signals": sent,
        "decisions": decisions,
        "blocked_per_s": round(decisions.get("blocked", 0) / elapsed, 1),
        "healthz_samples": len(healthz_ms),
        "healthz_ms_p50": round(statistics.median(healthz_ms), 2),
        "healthz_ms_p99": round(percentile(healthz_ms, 0.99), 2),
        "healthz_ms_max": round(max(healthz_ms), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--halts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.halts, args.clients, args.seconds))))


if __name__ == "__main__":
    main()
