"""``gateway demo``: a guided first run on the simulated broker, and a smoke test.

It starts its own gateway in this process (uvicorn as an asyncio task) on a port the OS picks, in a
fresh temporary directory holding its own gateway.yaml, risk_management.yaml and state_dir, with
tokens and a resume auth code made for the run and handed to the service as its environment:
nothing is read from the repository, the configured gateway or the caller's environment. Two
example strategies (gateway/demo_strategies.py) then trade through the strategy client and every
step prints what happened. The same steps give the same decisions and reasons on every run; when a
step does not, the demo says which and exits 1 (its temporary directory, with the gateway's log,
is kept for a look).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient
from gateway.config import load_config
from gateway.demo.strategies import (
    DEMO_CLOSES,
    BarFeed,
    MeanReversion,
    Momentum,
    RunResult,
    codes,
    describe,
)
from gateway.http.server import build_server
from gateway.models import Decision
from gateway.ops.logs import configure_logging
from gateway.service import JOURNAL_FILE, GatewayService
from gateway.store.journal import Journal

# The demo's own config, embedded: an installed package has no config/ directory to read.
DEMO_GATEWAY_YAML = """\
# gateway demo: the simulated broker, in a temporary directory, on a port the OS picks.
gateway:
  mode: paper
  broker: simulated
  state_dir: state
  risk_config: risk_management.yaml
  shutdown_timeout_s: 5
  api: {host: 127.0.0.1, port: 0}
  quotes: {max_age_s: 5, max_spread_bps: 100, missing: reject}
brokers:
  simulated:
    initial_cash: 100000
    tick_s: 0.5
    quotes:
      AAPL: [199.95, 200.05]
      MSFT: [409.90, 410.10]
      SPY: [589.95, 590.05]
"""

# The shipped config/risk_management.yaml, with two changes marked "demo".
DEMO_RISK_YAML = """\
version: "2.0"
risk_management:
  max_daily_loss: 0.02
  max_total_drawdown: 0.10
  max_portfolio_heat: 0.015         # demo (shipped 0.25): the second position already breaks it
  max_single_position_risk: 0.02
  stop_loss_percent: 0.03
  enable_drawdown_protection: true
  require_positive_expectancy: false
emergency:
  enable_kill_switch: true
  kill_switch_triggers:
    - {type: drawdown, threshold: 0.15}
    - {type: daily_loss, threshold: 0.05}
    - {type: portfolio_heat, threshold: 0.40}
    - {type: manual}
  panic_mode: {enabled: true, triggers: [market_crash, technical_failure], action: halt_trading}
  kill_switch: {flatten_positions: false, cancel_retries: 3}
  failure_threshold: 3
  resume_cooldown_s: 10             # demo (shipped 300): short, and still refuses at once
pre_trade:
  max_order_notional: 1000000
  max_order_quantity: 100000
  price_collar: 0.05
  max_orders_per_second: 100
"""

STEPS = 8
PAUSE_S = 0.6
STALE_BY = timedelta(minutes=10)
EXPECTED_SIGNALS = {"accepted": 3, "rejected": 2, "blocked": 1}
EXPECTED_ORDERS = {"filled": 1, "canceled": 2}


class DemoFailure(Exception):
    """A step did not show what it should."""


class DemoInterrupted(Exception):
    """Ctrl-C (or SIGTERM): uvicorn stopped the gateway before the demo was over."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


class Console:
    """Progress on stdout: a header per step, indented lines, pauses unless ``fast``."""

    def __init__(self, *, fast: bool):
        self.fast = fast
        self.step_no = 0

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.line(f"\n[{self.step_no}/{STEPS}] {title}")

    def say(self, text: str) -> None:
        self.line(f"      {text}")

    async def pause(self) -> None:
        if not self.fast:
            await asyncio.sleep(PAUSE_S)


def show(console: Console, result: RunResult) -> Decision:
    console.say(f"{result.strategy} on {result.symbol}: {result.idea}")
    expect(result.error is None, f"{result.strategy} failed unexpectedly: {result.error}")
    expect(result.decision is not None, f"{result.strategy} sent no signal")
    assert result.decision is not None
    console.say(describe(result.decision))
    return result.decision


class Demo:
    """The steps, against a started gateway: strategy client, admin HTTP client, the strategies."""

    def __init__(
        self, console: Console, gw: AsyncGatewayClient, admin: httpx.AsyncClient, *, auth_code: str
    ):
        self.console, self.gw, self.admin, self.auth_code = console, gw, admin, auth_code
        self.feed = BarFeed(DEMO_CLOSES)
        self.momentum = Momentum(gw, self.feed, budget=20_000)
        self.mean_reversion = MeanReversion(gw, self.feed, budget=40_000)

    async def push_quote(self, symbol: str, bid: float, ask: float, ts: str | None = None) -> None:
        body = [{"symbol": symbol, "bid": bid, "ask": ask, **({"ts": ts} if ts else {})}]
        response = await self.admin.post("/v1/sim/quotes", json=body)
        expect(response.status_code == 200, f"POST /v1/sim/quotes answered {response.status_code}")

    async def open_orders(self) -> list[dict[str, Any]]:
        response = await self.admin.get("/v1/orders")
        expect(response.status_code == 200, f"GET /v1/orders answered {response.status_code}")
        return list(response.json())

    async def accepted_order(self) -> None:
        self.console.step("an accepted order")
        decision = show(self.console, await self.momentum.run("AAPL"))
        filled = decision.order is not None and decision.order.status == "filled"
        expect(filled, f"expected an accepted, filled order, got {describe(decision)}")

    async def stale_quote(self) -> None:
        self.console.step("a stale quote refused")
        old = datetime.now(UTC) - STALE_BY
        await self.push_quote("MSFT", 409.90, 410.10, ts=old.isoformat())
        self.console.say("MSFT market data stalls: its last quote is 10 minutes old")
        decision = show(self.console, await self.mean_reversion.run("MSFT"))
        expect(codes(decision) == ["quote_stale"], f"expected [quote_stale], got {codes(decision)}")
        self.console.say(f"   {decision.reasons[0].message}")

    async def heat_refusal(self) -> None:
        self.console.step("a portfolio heat refusal")
        await self.push_quote("MSFT", 409.90, 410.10)
        self.console.say("MSFT quotes are fresh again (409.90 / 410.10); the same idea once more")
        decision = show(self.console, await self.mean_reversion.run("MSFT"))
        got = codes(decision)
        expect(got == ["portfolio_heat"], f"expected [portfolio_heat], got {got}")
        risk = decision.risk.position_risk
        expect(risk is not None and risk <= Decimal("0.02"), "position risk should pass (2%)")
        self.console.say(f"   {decision.reasons[0].message}")
        self.console.say("   (its position risk is within max_single_position_risk 2%)")

    async def failures_halt(self) -> None:
        self.console.step("a strategy failing three times halts the gateway")
        self.feed.outage("MSFT", "the data vendor timed out")
        status: dict[str, Any] = {}
        for attempt in (1, 2, 3):
            result = await self.mean_reversion.run("MSFT")
            expect(result.error is not None, "the strategy's run should have failed")
            status = await self.gw.status()
            streak = status["failures"]["consecutive_by_strategy"].get(self.mean_reversion.name)
            expect(streak == attempt, f"expected {attempt} failures in a row, not {streak}")
            self.console.say(f"mean_reversion run {attempt}: {result.error}")
            self.console.say(
                f"-> guard() reported the failure: {streak} in a row, gateway {status['state']}"
            )
        halt = status.get("halt") or {}
        expect(status["state"] == "halted", f"expected halted, got {status['state']}")
        expect(halt.get("trigger") == "technical_failure", f"unexpected halt {halt}")
        self.console.say(f"-> HALTED, trigger {halt['trigger']}: {halt['reason']}")
        self.console.say("while halted:")
        decision = show(self.console, await self.momentum.run("AAPL"))
        expect(codes(decision) == ["halted"], f"expected [halted], got {codes(decision)}")

    async def refused_resume(self) -> None:
        self.console.step("a resume refused in cooldown")
        response = await self.admin.post("/v1/resume", json={})
        body = response.json()
        refused = response.status_code == 409 and body.get("code") == "cooldown_active"
        expect(refused, f"expected 409 cooldown_active, got {response.status_code} {body}")
        retry = float(body.get("retry_after_s") or 0)
        self.console.say(f"admin resume -> 409 {body['code']}, retry after {retry:.0f}s")

    async def forced_resume(self) -> None:
        self.console.step("a forced resume")
        wrong = await self.admin.post("/v1/resume", json={"force": True, "auth_code": "guess"})
        expect(wrong.status_code == 403, f"a wrong auth code answered {wrong.status_code}")
        self.console.say(f"admin resume --force with a wrong auth code -> {wrong.status_code}")
        body = {"force": True, "auth_code": self.auth_code}
        response = await self.admin.post("/v1/resume", json=body)
        expect(response.status_code == 200, f"forced resume answered {response.status_code}")
        state = response.json()["state"]
        expect(state == "active", f"expected active after a forced resume, got {state}")
        self.console.say(f"admin resume --force with GATEWAY_RESUME_AUTH_CODE -> 200, {state}")

    async def kill_switch(self) -> None:
        self.console.step("the kill switch cancels resting orders")
        for symbol in ("AAPL", "SPY"):
            decision = show(self.console, await self.momentum.bid_below(symbol))
            order = decision.order
            resting = order is not None and order.status in ("new", "accepted")
            expect(resting, f"expected a resting order, got {describe(decision)}")
        open_before = await self.open_orders()
        expect(len(open_before) == 2, f"expected 2 open orders, not {len(open_before)}")
        self.console.say(f"open orders: {len(open_before)}")
        report = await self.gw.kill("demo: end of session")
        failed, status = report["failed"], report["status"]
        halt = status.get("halt") or {}
        self.console.say(
            f"kill -> cancelled {report['cancelled']}, failed {len(failed)}, "
            f"in {report['elapsed_ms']:.1f} ms; gateway {status['state']}, "
            f"kill_switch {halt.get('kill_switch')}"
        )
        expect(report["cancelled"] == 2 and not failed, f"unexpected kill report {report}")
        expect(halt.get("kill_switch") is True, "the kill switch should have halted the gateway")
        left = await self.open_orders()
        expect(not left, f"expected no open orders after the kill, got {len(left)}")
        self.console.say(f"open orders: {len(left)}")

    async def run(self) -> None:
        for step in (
            self.accepted_order,
            self.stale_quote,
            self.heat_refusal,
            self.failures_halt,
            self.refused_resume,
            self.forced_resume,
            self.kill_switch,
        ):
            await step()
            await self.console.pause()


def write_demo_config(directory: Path) -> Path:
    (directory / "risk_management.yaml").write_text(DEMO_RISK_YAML, encoding="utf-8")
    path = directory / "gateway.yaml"
    path.write_text(DEMO_GATEWAY_YAML, encoding="utf-8")
    return path


def show_summary(console: Console, state_dir: Path) -> None:
    console.step(f"the journal's summary ({JOURNAL_FILE})")
    journal = Journal(state_dir / JOURNAL_FILE)
    try:
        summary = journal.summary()
    finally:
        journal.close()

    def counts(values: dict[str, Any]) -> str:
        return ", ".join(f"{key} {value}" for key, value in sorted(values.items())) or "none"

    console.say(f"signals: {counts(summary['signals'])}")
    console.say(f"orders:  {counts(summary['orders'])}")
    console.say(f"fills:   {summary['fills']}")
    console.say(f"events:  {counts(summary['events'])}")
    expect(summary["signals"] == EXPECTED_SIGNALS, f"unexpected signals {summary['signals']}")
    expect(summary["orders"] == EXPECTED_ORDERS, f"unexpected orders {summary['orders']}")
    expect(summary["fills"] == 1, f"expected 1 fill, got {summary['fills']}")


async def _wait_started(server: Any, task: asyncio.Task[None], timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not server.started:
        expect(not task.done(), "the gateway did not start (see its log)")
        expect(loop.time() < deadline, f"the gateway did not start in {timeout_s:.0f}s")
        await asyncio.sleep(0.02)


async def _demo(console: Console, workdir: Path) -> None:
    config = load_config(write_demo_config(workdir))
    tokens = {"strategy": secrets.token_urlsafe(32), "admin": secrets.token_urlsafe(32)}
    auth_code = secrets.token_urlsafe(24)
    environ = {
        "GATEWAY_TOKEN": tokens["strategy"],
        "GATEWAY_ADMIN_TOKEN": tokens["admin"],
        "GATEWAY_RESUME_AUTH_CODE": auth_code,
    }
    service = GatewayService(config, environ=environ)
    server, _ = build_server(config, service)
    task = asyncio.create_task(server.serve(), name="demo-gateway")
    try:
        await _wait_started(server, task)
        port = int(server.servers[0].sockets[0].getsockname()[1])
        url = f"http://127.0.0.1:{port}"
        status = service.status()
        console.line(f"gateway    {url}, simulated broker, state {status['state']}")
        console.line(f"equity     {status['risk']['equity']:,.2f} (cash; AAPL, MSFT, SPY quoted)")
        limits, emergency = config.risk.risk_management, config.risk.emergency
        console.line(
            f"limits     position risk {limits.max_single_position_risk:.0%}, portfolio heat "
            f"{limits.max_portfolio_heat:.1%}, {emergency.failure_threshold} failures halt, "
            f"resume cooldown {emergency.resume_cooldown_s:g}s"
        )
        console.line("strategies momentum (budget 20,000), mean_reversion (budget 40,000)")
        admin_headers = {"Authorization": f"Bearer {tokens['admin']}"}
        async with (
            AsyncGatewayClient(url, tokens["strategy"]) as gw,
            httpx.AsyncClient(base_url=url, headers=admin_headers, timeout=10.0) as admin,
        ):
            await console.pause()
            await Demo(console, gw, admin, auth_code=auth_code).run()
    except Exception as exc:
        if server.should_exit:  # set before our finally: uvicorn took a signal and stopped
            raise DemoInterrupted() from exc
        raise
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=config.gateway.shutdown_timeout_s + 5)
    console.line("\ngateway stopped")
    show_summary(console, config.gateway.state_dir)


def _logging_to(path: Path) -> Callable[[], None]:
    """The gateway's log goes to a file in the demo's directory, not over the progress lines."""
    stream = path.open("a", encoding="utf-8")
    configure_logging(level="INFO", json=True, stream=stream)
    root = logging.getLogger()

    def restore() -> None:
        for handler in list(root.handlers):
            if handler.get_name() == "gateway":
                root.removeHandler(handler)
                handler.close()
        logging.captureWarnings(False)
        stream.close()

    return restore


def run_demo(*, fast: bool = False) -> int:
    """Run the guided demo; 0 when every step showed what it should, 1 otherwise."""
    console = Console(fast=fast)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    log_path = workdir / "gateway.log"
    restore_logging = _logging_to(log_path)
    failure: str | None = None
    console.line("execution-gateway demo: a gateway on the simulated broker, two strategies")
    console.line(f"state dir  {workdir / 'state'} (temporary)")
    try:
        asyncio.run(_demo(console, workdir))
    except DemoFailure as exc:
        failure = f"step {console.step_no}: {exc}"
    except (DemoInterrupted, KeyboardInterrupt):
        shutil.rmtree(workdir, ignore_errors=True)
        console.line("\ndemo interrupted")
        return 1
    except Exception as exc:  # the demo is a smoke test: any surprise is a failed run, said so
        failure = f"step {console.step_no}: {type(exc).__name__}: {exc}"
    finally:
        restore_logging()
    if failure is not None:
        console.line(f"\ndemo FAILED at {failure}")
        print(
            f"gateway: demo failed at {failure} (log and state kept in {workdir})", file=sys.stderr
        )
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    console.line(f"\ndemo passed: all {STEPS} steps showed what they should")
    return 0


__all__ = ["DEMO_GATEWAY_YAML", "DEMO_RISK_YAML", "run_demo"]
