"""Operating the real process: SIGTERM, the live guard, /metrics and the JSON logs."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path

import httpx

from gateway.client import GatewayClient
from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}


def test_sigterm_finishes_in_flight_work_keeps_resting_orders_and_exits_0(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()  # the simulated account persists by default
    with GatewayClient(gw.url, STRATEGY_TOKEN) as client:
        resting = client.submit(
            "rest-1", "s", "AAPL", "buy", 1, order_type="limit", limit_price=190
        )
        assert resting.decision == "accepted"
    answers: list[int] = []
    stop = threading.Event()
    streaming = threading.Event()  # set once a few signals were answered: work is in flight

    def stream() -> None:
        with httpx.Client(base_url=gw.url, headers=HEADERS, timeout=5) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v1/signals",
                        json={
                            "signal_id": f"t-{i}",
                            "strategy": "s",
                            "symbol": "AAPL",
                            "side": "buy" if i % 2 == 0 else "sell",
                            "quantity": 1,
                        },
                    )
                except httpx.HTTPError:
                    return
                answers.append(r.status_code)
                if len(answers) >= 5:
                    streaming.set()
                i += 1

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    assert streaming.wait(timeout=30), "no signal was answered"
    # The process must be gone within shutdown_timeout_s (default 10 s): a deadline, with a
    # margin for a loaded machine, not a measure of how fast it goes.
    assert gw.terminate(timeout_s=10 + 20) == 0
    stop.set()
    thread.join(timeout=5)
    assert answers and set(answers) <= {200, 503}
    with contextlib.closing(sqlite3.connect(gw.state_dir / "sim_broker.sqlite3")) as db:
        open_orders = db.execute("SELECT client_order_id FROM orders WHERE status = 'accepted'")
        assert [c for (c,) in open_orders] == [resting.order.client_order_id]  # type: ignore[union-attr]
    log = gw.log()
    assert '"level": "INFO"' in log and "Application shutdown complete" in log


def test_live_mode_cannot_start_by_accident(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, gateway={"gateway": {"mode": "live"}})
    result = gw.cli("serve")
    assert result.returncode == 2
    assert "allow_live" in result.stderr
    gw2 = GatewayProcess(tmp_path / "b", gateway={"gateway": {"mode": "live", "allow_live": True}})
    result = gw2.cli("serve")
    assert result.returncode == 2
    assert "simulated" in result.stderr


def test_metrics_and_json_logs_carry_the_ids(tmp_path: Path) -> None:
    secret = "super-secret-admin-token-1234"
    gw = GatewayProcess(tmp_path, env={"GATEWAY_ADMIN_TOKEN": secret})
    with gw:
        with GatewayClient(gw.url, STRATEGY_TOKEN) as client:
            client.submit("m-1", "momentum", "AAPL", "buy", 1)
            client.submit("m-2", "momentum", "NOPE", "buy", 1)
            client.halt("metrics drill")
        metrics = httpx.get(f"{gw.url}/metrics").text
        httpx.post(f"{gw.url}/v1/resume", headers={"Authorization": f"Bearer {secret}"}, json={})
    for name in (
        "gateway_signals_total",
        "gateway_orders_total",
        "gateway_submit_latency_seconds",
        "gateway_state",
        "gateway_halts_total",
        "gateway_broker_connected",
        "gateway_journal_write_seconds",
    ):
        assert name in metrics, name
    assert 'decision="accepted"' in metrics and 'reason="quote_missing"' in metrics
    assert 'trigger="manual"' in metrics
    lines = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
    decided = [e for e in lines if e.get("signal_id") == "m-1"]
    assert decided, "the decision is logged with its signal_id"
    assert {"ts", "level", "message", "strategy", "symbol", "client_order_id"} <= set(decided[0])
    assert any(e["level"] == "CRITICAL" and "metrics drill" in e["message"] for e in lines)
    assert secret not in gw.log()


def test_alpaca_without_keys_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, gateway={"gateway": {"broker": "alpaca"}})
    for var in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        gw.env.pop(var, None)
    result = gw.cli("serve")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("gateway: broker: ") and "ALPACA_API_KEY" in line
    assert "Traceback" not in result.stderr


def test_the_schema_is_served_and_no_page_needs_a_cdn(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path) as gw:
        # FastAPI's /docs and /redoc load their scripts from a CDN: useless on an offline host.
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert httpx.get(f"{gw.url}{page}").status_code == 404, page
        schema = httpx.get(f"{gw.url}/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/v1/signals", "/v1/outcomes", "/v1/status", "/v1/orders", "/v1/positions"):
        assert path in paths, path
    for path in ("/v1/halt", "/v1/kill", "/v1/resume", "/v1/sim/quotes", "/healthz", "/readyz"):
        assert path in paths, path
    assert "post" in paths["/v1/signals"]
