"""HTTP benchmark: `gateway serve` against a bare FastAPI endpoint on the same server stack, in
one run. Prints one JSON line.

    python bench/http.py [--requests 20000] [--clients 8]

The bare app only validates the same Signal body and answers a small JSON object: it is the
ceiling the stack (uvicorn, its loop and HTTP parser, FastAPI, pydantic) allows. The gateway
answers the same requests with the whole pipeline behind them (simulated broker, journal on).
Both are separate processes started the same way; the load comes from `--clients` keep-alive
connections of plain asyncio sockets (a light client: on a 2-core machine an HTTP client
library would measure itself). Each connection sends its next request when the last answer is
in, as a strategy does.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would hide
# the standard library's http package from everything below (httpx imports http.client).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-strategy-token-0123456789abcdef"
ADMIN = "bench-admin-token-0123456789abcdef"

BARE_APP = """
from fastapi import FastAPI
from gateway.models import Signal

app = FastAPI()

@app.post("/v1/signals")
async def signal(body: Signal) -> dict[str, object]:
    return {"signal_id": body.signal_id, "decision": "accepted", "reasons": []}

@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_config(directory: Path, port: int) -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["pre_trade"]["max_orders_per_second"] = 1_000_000  # measure the stack, not the limit
    risk["risk_management"]["protective_stop"] = "none"  # plain orders, as the bare app
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    config = {
        "gateway": {
            "state_dir": "state",
            "api": {"port": port},
            "schedule": {"risk_sweep_s": 5, "reconcile_s": 3600},
        },
        "brokers": {"simulated": {"quotes": {"AAPL": [199.95, 200.05]}, "persist": False}},
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(argv: list[str], port: int, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_TOKEN": TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN,
        "PYTHONPATH": str(ROOT),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[2:4]} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"not ready in 30 s:\n{log.read_text()}")


def request(port: int, n: int, tag: str) -> bytes:
    side = "buy" if n % 2 == 0 else "sell"
    body = (
        f'{{"signal_id":"{tag}-{n}","strategy":"bench","symbol":"AAPL",'
        f'"side":"{side}","quantity":1}}'
    ).encode()
    head = (
        f"POST /v1/signals HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def connection(port: int, numbers: range, tag: str, latencies: list[float]) -> int:
    """Send the requests one after the other on one keep-alive connection; count the 200s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    try:
        for n in numbers:
            payload = request(port, n, tag)
            t0 = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            ok += head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return ok


async def load(port: int, requests: int, clients: int, tag: str) -> dict[str, float]:
    warm: list[float] = []
    await asyncio.gather(
        *(connection(port, range(c, 2000, clients), f"w{tag}", warm) for c in range(clients))
    )
    latencies: list[float] = []
    started = time.perf_counter()
    oks = await asyncio.gather(
        *(connection(port, range(c, requests, clients), tag, latencies) for c in range(clients))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_s": round(requests / elapsed),
        "ok": sum(oks),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "bare_app.py").write_text(BARE_APP)
        bare_port, gateway_port = free_port(), free_port()
        bare = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            bare_port,
            directory / "bare.log",
            directory,
        )
        config = gateway_config(directory, gateway_port)
        gateway = start(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
            gateway_port,
            directory / "gateway.log",
            directory,
        )
        try:
            bare_figures = asyncio.run(load(bare_port, args.requests, args.clients, "bare"))
            gateway_figures = asyncio.run(load(gateway_port, args.requests, args.clients, "gw"))
        finally:
            for proc in (bare, gateway):
                proc.terminate()
                proc.wait(timeout=30)
    print(
        json.dumps(
            {
                "benchmark": "http",
                "requests": args.requests,
                "clients": args.clients,
                "bare": bare_figures,
                "gateway": gateway_figures,
                "rate_ratio": round(
                    gateway_figures["requests_per_s"] / bare_figures["requests_per_s"], 3
                ),
                "p99_ratio": round(gateway_figures["p99_ms"] / bare_figures["p99_ms"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
