"""The demo's steps: what each shows, and the check that it did (DemoFailure otherwise)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient
from gateway.demo.strategies import (
    DEMO_CLOSES,
    BarFeed,
    MeanReversion,
    Momentum,
    RunResult,
    codes,
    describe,
)
from gateway.models import Decision

STEPS = 10
PAUSE_S = 0.6
STALE_BY = timedelta(minutes=10)
DRILL_LATENCY_MS = 1000
EXPECTED_SIGNALS = {"accepted": 5, "rejected": 2, "blocked": 1}
# The protected entry adds its entry and take profit (filled) and its stop (canceled).
EXPECTED_ORDERS = {"filled": 3, "canceled": 4}
EXPECTED_FILLS = 3


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
        self,
        console: Console,
        gw: AsyncGatewayClient,
        admin: httpx.AsyncClient,
        *,
        auth_code: str,
        strategy_token: str,
    ):
        self.console, self.gw, self.admin, self.auth_code = console, gw, admin, auth_code
        # The strategy's own HTTP session, for what the demo's client calls do not spell out.
        self.gw_http = httpx.AsyncClient(
            base_url=str(admin.base_url),
            headers={"Authorization": f"Bearer {strategy_token}"},
            timeout=10.0,
        )
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

    async def protected_entry(self) -> None:
        self.console.step("a protected entry: its stop and take profit held by the broker")
        body = {
            "signal_id": "demo-protected-spy",
            "strategy": self.momentum.name,
            "symbol": "SPY",
            "side": "buy",
            "quantity": 5,
            "stop_loss_price": 580,
            "take_profit_price": 600,
        }
        response = await self.gw_http.post("/v1/signals", json=body)
        decision = Decision.model_validate(response.json())
        self.console.say("momentum buys 5 SPY with a stop at 580 and a take profit at 600")
        self.console.say(describe(decision))
        order = decision.order
        expect(order is not None and order.status == "filled", f"got {describe(decision)}")
        assert order is not None
        legs = [(leg.role, leg.stop_price or leg.limit_price) for leg in order.legs]
        expect(len(legs) == 2, f"expected a stop loss and a take profit, got {legs}")
        for role, price in legs:
            self.console.say(f"   leg {role} at {price}")
        risk = decision.risk.position_risk
        self.console.say(
            f"   position risk {float(risk or 0):.4%}: 5 x (590.05 - 580), to the stop, "
            "not 3% of the position"
        )
        status = await self.gw.status()
        spy = [row for row in status.get("protection", []) if row["symbol"] == "SPY"]
        expect(bool(spy) and spy[0]["protected"], f"SPY should be protected: {spy}")
        self.console.say(f"   /v1/status protection: SPY protected at {spy[0]['stop_prices']}")
        await self.push_quote("SPY", 600.00, 600.10)
        self.console.say("SPY trades up to 600: the take profit fills, the stop is cancelled")
        await self.wait_flat("SPY")
        self.console.say("   SPY position closed; no stop left behind")
        await self.push_quote("SPY", 589.95, 590.05)

    async def wait_flat(self, symbol: str, timeout_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            positions = (await self.admin.get("/v1/positions")).json()
            resting = [o for o in await self.open_orders() if o["symbol"] == symbol]
            if not resting and all(p["symbol"] != symbol for p in positions):
                return
            expect(loop.time() < deadline, f"{symbol} did not close by its take profit")
            await asyncio.sleep(0.02)

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

    async def kill_on_the_wire(self) -> None:
        self.console.step("a fire drill: the kill switch catches an order on its way")
        body = {"force": True, "auth_code": self.auth_code}
        resumed = await self.admin.post("/v1/resume", json=body)
        expect(resumed.status_code == 200, f"forced resume answered {resumed.status_code}")
        self.console.say("admin resume --force -> active again")
        drill = await self.admin.post("/v1/sim/faults", json={"latency_ms": DRILL_LATENCY_MS})
        expect(drill.status_code == 200, f"POST /v1/sim/faults answered {drill.status_code}")
        seconds = DRILL_LATENCY_MS / 1000
        self.console.say(f"drill: every broker call now takes {seconds:g} s (/v1/sim/faults)")
        sending = asyncio.create_task(self.momentum.bid_below("SPY"))
        await self.wait_in_flight()
        self.console.say("a resting SPY bid is on its way to the broker; kill now:")
        report = await self.gw.kill("demo: drill, kill while an order is on the wire")
        decision = show(self.console, await sending)
        await self.admin.post("/v1/sim/faults", json={})
        landed = decision.order.status if decision.order else "-"
        self.console.say(
            f"kill -> cancelled {report['cancelled']}, failed {len(report['failed'])}; "
            f"the order that landed after the halt: {landed}"
        )
        caught = report["cancelled"] == 1 and not report["failed"]
        expect(caught, f"the kill should have cancelled the order in flight: {report}")
        canceled = decision.order is not None and decision.order.status == "canceled"
        expect(canceled, f"expected the drill's order canceled, got {describe(decision)}")
        left = await self.open_orders()
        expect(not left, f"expected no open orders after the drill, got {len(left)}")
        self.console.say(f"open orders: {len(left)}")

    async def wait_in_flight(self, timeout_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (await self.gw.status())["orders"]["in_flight"] == 0:
            expect(loop.time() < deadline, "the drill's order never went on its way")
            await asyncio.sleep(0.02)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.gw_http.aclose()

    async def _run(self) -> None:
        for step in (
            self.accepted_order,
            self.protected_entry,
            self.stale_quote,
            self.heat_refusal,
            self.failures_halt,
            self.refused_resume,
            self.forced_resume,
            self.kill_switch,
            self.kill_on_the_wire,
        ):
            await step()
            await self.console.pause()
