"""HTTP benchmark: `gateway serve` against a bare FastAPI endpoint on the same server stack, in
one run. Prints one JSON line.

    python bench/http.py [--requests 20000] [--clients 8] [--baseline DIR]
                         [--protective-stop none|auto]

The bare app only validates the same Signal body and answers a small JSON object: it is the
ceiling the stack (uvicorn, its loop and HTTP parser, FastAPI, pydantic) allows. The gateway
answers the same requests with the whole pipeline behind them (simulated broker, journal on).
Both are separate processes started the same way; the load comes from `--clients` keep-alive
connections of plain asyncio sockets (a light client: on a 2-core machine an HTTP client
library would measure itself). Each connection sends its next request when the last answer is
in, as a strategy does.

The servers take turns (``--rounds``, a share of the requests each time), so a shared host's
load that comes and goes falls on all of them alike. Per server: rate, p50/p99/max latency,
the server's CPU time per request (from /proc, so a busy shared host shows as wall time, not
as CPU), the client's, and, for a gateway, the worst event-loop lag it reported
(gateway_event_loop_lag_seconds). ``--baseline DIR`` measures a second checkout's
``gateway serve`` in the same run (`git archive main | tar -x -C DIR`): an A/B on one machine
at one load. The host's load average goes in the line too.
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
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import tempfile
import time
from typing import Any

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


def gateway_config(directory: Path, port: int, protective_stop: str = "none") -> Path:
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["pre_trade"]["max_orders_per_second"] = 1_000_000  # measure the stack, not the limit
    # Half the clients only buy: with protective stops each buy rests two legs that the sells
    # only shrink (each leg to the whole position), so live legs pile up and every signal pays
    # for all of them (--protective-stop auto shows it). The stack is measured on plain orders.
    risk["risk_management"]["protective_stop"] = protective_stop
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


def start(
    argv: list[str], port: int, log: Path, cwd: Path, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_TOKEN": TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN,
        "PYTHONPATH": str(root),
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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def loop_lag(port: int, worst: list[float]) -> None:
    """Poll the gateway's gateway_event_loop_lag_seconds (the worst of each second)."""
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                for line in (await client.get(f"http://127.0.0.1:{port}/metrics")).text.split("\n"):
                    if line.startswith("gateway_event_loop_lag_seconds "):
                        worst.append(float(line.split()[1]))
            await asyncio.sleep(0.5)


@dataclasses.dataclass
class Tally:
    """One server's figures, summed over the rounds."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    lags: list[float] = dataclasses.field(default_factory=list)
    requests: int = 0
    ok: int = 0
    elapsed: float = 0.0
    server_cpu: float | None = 0.0
    client_cpu: float = 0.0


async def warm(port: int, clients: int, tag: str) -> None:
    ignored: list[float] = []
    await asyncio.gather(
        *(connection(port, range(c, 2000, clients), f"w{tag}", ignored) for c in range(clients))
    )


async def load(port: int, requests: int, clients: int, tag: str, pid: int, tally: Tally) -> None:
    """One round of ``requests`` on ``clients`` connections, added to ``tally``."""
    poller = asyncio.create_task(loop_lag(port, tally.lags))
    cpu_before = cpu_seconds(pid)
    client_before = time.process_time()
    started = time.perf_counter()
    oks = await asyncio.gather(
        *(
            connection(port, range(c, requests, clients), tag, tally.latencies)
            for c in range(clients)
        )
    )
    tally.elapsed += time.perf_counter() - started
    cpu_after = cpu_seconds(pid)
    tally.client_cpu += time.process_time() - client_before
    poller.cancel()
    tally.requests += requests
    tally.ok += sum(oks)
    if cpu_before is None or cpu_after is None or tally.server_cpu is None:
        tally.server_cpu = None
    else:
        tally.server_cpu += cpu_after - cpu_before


def summary(tally: Tally) -> dict[str, float | None]:
    latencies = sorted(tally.latencies)
    per_request = 1000 / tally.requests
    cpu = tally.server_cpu
    return {
        "requests_per_s": round(tally.requests / tally.elapsed),
        "ok": tally.ok,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "server_cpu_ms_per_request": None if cpu is None else round(cpu * per_request, 4),
        # The client's own CPU per request: near the server's, it is the client that is measured.
        "client_cpu_ms_per_request": round(tally.client_cpu * per_request, 4),
        "loop_lag_max_ms": round(max(tally.lags) * 1000, 1) if tally.lags else None,
    }


def measure(
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Every server in turn, ``args.rounds`` times, each round a share of the requests: on a
    shared host whose load comes and goes, each server meets the same mix of quiet and busy
    moments (one server after the other, the last would meet whatever load came last)."""
    tallies = {name: Tally() for name in servers}
    share = args.requests // args.rounds
    # The client on uvloop too (when installed), as the servers are: it leaves the servers more
    # of a small machine (measured: 0.03 ms of client CPU a request, 0.04 on asyncio's loop,
    # against the bare server's 0.10; client_cpu_ms_per_request shows it in every line).
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        for name, (port, _) in servers.items():
            runner.run(warm(port, args.clients, name))
        for n in range(args.rounds):
            for name, (port, proc) in servers.items():
                tally = tallies[name]
                runner.run(load(port, share, args.clients, f"{name}{n}", proc.pid, tally))
    return {name: summary(tally) for name, tally in tallies.items()}


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="servers take turns this often")
    parser.add_argument("--protective-stop", choices=("none", "auto"), default="none")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the gateway (e.g. `git worktree add /tmp/base main`): its "
        "`gateway serve` is measured too, in the same run (A/B)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "bare_app.py").write_text(BARE_APP)
        try:
            port = free_port()
            bare = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port)]
            bare += ["--log-level", "warning", "--no-access-log"]
            servers["bare"] = port, start(bare, port, directory / "bare.log", directory)
            roots = {"gateway": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
            for name, root in roots.items():
                port = free_port()
                (directory / name).mkdir()
                config = gateway_config(directory / name, port, args.protective_stop)
                argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)]
                proc = start(argv, port, directory / f"{name}.log", directory / name, root)
                servers[name] = port, proc
            results = measure(servers, args)
        finally:
            for _, proc in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    bare_figures = results["bare"]
    line: dict[str, Any] = {
        "benchmark": "http",
        "requests": args.requests,
        "clients": args.clients,
        "rounds": args.rounds,
        "protective_stop": args.protective_stop,
        "load_average": [round(x, 2) for x in load_before],
        "cpus": os.cpu_count(),
        **results,
    }
    for name in ("gateway", "baseline"):
        if name in results:
            prefix = "" if name == "gateway" else "baseline_"
            line[f"{prefix}rate_ratio"] = round(
                results[name]["requests_per_s"] / bare_figures["requests_per_s"], 3
            )
            line[f"{prefix}p99_ratio"] = round(results[name]["p99_ms"] / bare_figures["p99_ms"], 3)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
