"""``gateway demo``: a guided first run on the simulated broker, and a smoke test.

It starts its own gateway in this process (uvicorn as an asyncio task) on a port the OS picks, in a
fresh temporary directory holding its own gateway.yaml, risk_management.yaml and state_dir, with
tokens and a resume auth code made for the run and handed to the service as its environment:
nothing is read from the repository, the configured gateway or the caller's environment. Two
example strategies (gateway/demo/strategies.py) then trade through the strategy client and every
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
from pathlib import Path
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient
from gateway.config import load_config
from gateway.demo.steps import (
    EXPECTED_FILLS,
    EXPECTED_ORDERS,
    EXPECTED_SIGNALS,
    STEPS,
    Console,
    Demo,
    DemoFailure,
    DemoInterrupted,
    expect,
)
from gateway.http.server import build_server
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
    expect(
        summary["fills"] == EXPECTED_FILLS,
        f"expected {EXPECTED_FILLS} fills, got {summary['fills']}",
    )


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
            demo = Demo(console, gw, admin, auth_code=auth_code, strategy_token=tokens["strategy"])
            await demo.run()
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
