"""Firm halt latency: from ``gateway firm halt`` (the insert and NOTIFY in PostgreSQL) to every
gateway HALTED, with 3 real ``gateway serve`` processes on the local PostgreSQL. Prints one JSON
line with p50, p99 and max over the trials (target: p99 within 100 ms).

    python bench/firm_halt.py [--trials 50] [--gateways 3] [--pg-host 127.0.0.1:5432]

Each trial starts its clock just before the firm halt's transaction begins (what the CLI runs,
on a connection opened beforehand, so the CLI's process start is not counted) and stops it at
the ``halt.since`` each gateway stamped when its halt took hold (same host, same clock); a
trial's figure is its slowest gateway. Between trials the firm halt is lifted and each gateway
resumed (cooldown 0). A fresh database is created for the run and dropped after it.
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
import getpass
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import httpx
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.firm.control import firm_halt, firm_resume
from gateway.firm.schema import migrate

STRATEGY_TOKEN = "bench-strategy-token"
ADMIN_TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_user(host: str) -> str:
    for user in dict.fromkeys([getpass.getuser(), "postgres", "root"]):
        try:
            with psycopg.connect(f"postgresql://{user}@{host}/postgres", connect_timeout=3):
                return user
        except psycopg.Error:
            continue
    raise SystemExit(f"no PostgreSQL on {host} lets us in (trust authentication expected)")


@contextmanager
def fresh_database(host: str) -> Iterator[str]:
    user = server_user(host)
    name = f"firm_bench_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://{user}@{host}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{host}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def gateway_process(directory: Path, dsn: str, gateway_id: str) -> Iterator[str]:
    directory.mkdir(parents=True)
    port = free_port()
    risk = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
    risk["emergency"]["resume_cooldown_s"] = 0
    (directory / "risk_management.yaml").write_text(yaml.safe_dump(risk))
    config = {
        "gateway": {
            "state_dir": "state",
            "risk_config": "risk_management.yaml",
            "api": {"host": "127.0.0.1", "port": port},
            "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600},
        },
        "brokers": {"simulated": {"quotes": {"AAPL": [199.95, 200.05]}}},
        "firm": {"gateway_id": gateway_id},
    }
    (directory / "gateway.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "GATEWAY_TOKEN": STRATEGY_TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_FIRM_DSN": dsn,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("NOTIFY_SOCKET", None)
    with (directory / "gateway.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(directory / "gateway.yaml"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"gateway {gateway_id} did not start: see {directory / 'gateway.log'}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def halted_since(client: httpx.AsyncClient, url: str) -> datetime | None:
    body = (await client.get(f"{url}/v1/status")).json()
    halt = body.get("halt")
    if body["state"] != "halted" or halt is None or halt["trigger"] != "firm_halt":
        return None
    return datetime.fromisoformat(halt["since"])


async def trial(conn: Any, client: httpx.AsyncClient, urls: list[str], n: int) -> float:
    started = time.time()
    await firm_halt(conn, f"bench trial {n}", by="bench")
    latencies = []
    for url in urls:
        deadline = time.monotonic() + 10
        since = await halted_since(client, url)
        while since is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} not halted within 10 s")
            await asyncio.sleep(0.005)
            since = await halted_since(client, url)
        latencies.append((since.timestamp() - started) * 1000)
    await firm_resume(conn, by="bench")
    for url in urls:
        while True:
            answer = await client.post(
                f"{url}/v1/resume", json={}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.005)  # the lift is still on its way to this gateway
    return max(latencies)


async def run(dsn: str, urls: list[str], trials: int) -> list[float]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await migrate(conn)
        headers = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            return [await trial(conn, client, urls, n) for n in range(trials)]
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--pg-host", default="127.0.0.1:5432")
    args = parser.parse_args()
    if args.trials < 20:
        parser.error("--trials: at least 20, for a p99 worth the name")
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(args.pg_host) as dsn,
        ExitStack() as stack,
    ):
        urls = [
            stack.enter_context(gateway_process(Path(tmp) / f"gw-{n}", dsn, f"gw-{n}"))
            for n in range(args.gateways)
        ]
        latencies = asyncio.run(run(dsn, urls, args.trials))
    print(
        json.dumps(
            {
                "bench": "firm_halt",
                "gateways": args.gateways,
                "trials": len(latencies),
                "p50_ms": round(statistics.median(latencies), 2),
                "p99_ms": round(percentile(latencies, 0.99), 2),
                "max_ms": round(max(latencies), 2),
                "target_p99_ms": 100,
            }
        )
    )


if __name__ == "__main__":
    main()
