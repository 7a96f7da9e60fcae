"""The safety core through the HTTP API: halts, kill switch, resume, failures, risk states."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from brokers.simulated.broker import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, RESUME_CODE, TEST_ENV, api_client, signal


def sim(service: GatewayService) -> SimulatedBroker:
    assert isinstance(service.broker, SimulatedBroker)
    return service.broker


async def test_manual_halt_blocks_everything_and_nothing_reaches_the_broker(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    status = (await client.post("/v1/halt", json={"reason": "desk says stop"})).json()
    assert status["state"] == "halted"
    assert status["halt"]["trigger"] == "manual"
    assert status["halt"]["kill_switch"] is False
    before = dict(sim(service).submit_counts)
    for i, body in enumerate(
        [
            signal("h-1"),
            signal("h-2", side="sell"),
            signal("h-3", order_type="limit", limit_price=150),
            signal("h-4", symbol="NOQUOTE"),
        ]
    ):
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "blocked", i
        assert [r["code"] for r in decision["reasons"]] == ["halted"]
    assert dict(sim(service).submit_counts) == before  # no submit reached the broker
    status = (await client.get("/v1/status")).json()
    assert status["halt"]["blocked"] == 4


async def test_second_halt_keeps_the_first_reason(
    client: httpx.AsyncClient, service: GatewayService
) -> None:
    await client.post("/v1/halt", json={"reason": "first"})
    status = (await client.post("/v1/halt", json={"reason": "second"})).json()
    assert status["halt"]["reason"] == "first"
    kinds = [e["kind"] for e in service.journal.events()]
    assert "halt.halt" in kinds and "halt.halt_repeated" in kinds


async def test_resume_needs_admin_and_respects_cooldown(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    # The gateway's clock is injected (a sleep would race the cooldown on a loaded machine);
    # it starts at the real time, which stamps the simulated market's quotes.
    now = [datetime.now(UTC)]
    service = await make_service(
        make_config(risk={"emergency": {"resume_cooldown_s": 0.3}}), clock=lambda: now[0]
    )
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        await client.post("/v1/halt", json={"reason": "drill"})
        assert (await client.post("/v1/resume", json={})).status_code == 403
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409
        assert refused.json()["code"] == "cooldown_active"
        assert refused.json()["retry_after_s"] == 0.3
        now[0] += timedelta(seconds=0.3)
        resumed = await admin.post("/v1/resume", json={})
        assert resumed.status_code == 200
        assert resumed.json()["state"] == "active"
        accepted = (await client.post("/v1/signals", json=signal("after-resume"))).json()
        assert accepted["decision"] == "accepted"


async def test_forced_resume_needs_the_auth_code(
    service: GatewayService, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await client.post("/v1/halt", json={"reason": "drill"})
    assert (await admin.post("/v1/resume", json={"force": True})).status_code == 403
    wrong = await admin.post("/v1/resume", json={"force": True, "auth_code": "nope"})
    assert wrong.status_code == 403
    ok = await admin.post("/v1/resume", json={"force": True, "auth_code": RESUME_CODE})
    assert ok.status_code == 200 and ok.json()["state"] == "active"
    forced = [e for e in service.journal.events() if e["kind"] == "halt.forced_resume"]
    assert forced and forced[0]["by"] == "api:admin"
    assert "cooldown" in forced[0]["detail"]


async def test_kill_switch_cancels_every_resting_order(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    for i in range(20):
        body = signal(f"rest-{i}", order_type="limit", limit_price=190 + i * 0.1, quantity=1)
        assert (await client.post("/v1/signals", json=body)).json()["order"]["status"] == "accepted"
    assert len((await client.get("/v1/orders")).json()) == 20
    report = (await client.post("/v1/kill", json={"reason": "fat finger"})).json()
    assert report["cancelled"] == 20
    assert report["failed"] == []
    assert report["elapsed_ms"] >= 0
    assert report["status"]["state"] == "halted"
    assert report["status"]["halt"]["kill_switch"] is True
    assert report["status"]["halt"]["trigger"] == "kill_switch"
    assert (await client.get("/v1/orders")).json() == []
    assert await sim(service).open_orders() == []


async def test_kill_switch_retries_and_lists_what_the_broker_refused(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    ids = []
    for i in range(3):
        body = signal(f"stuck-{i}", order_type="limit", limit_price=190, quantity=1)
        ids.append((await client.post("/v1/signals", json=body)).json()["order"]["broker_order_id"])
    sim(service).fail_cancels[ids[0]] = "exchange says no"
    report = (await client.post("/v1/kill", json={"reason": "drill"})).json()
    assert report["cancelled"] == 2
    assert report["failed"] == [{"order_id": ids[0], "reason": "exchange says no"}]
    open_ids = [o["broker_order_id"] for o in (await client.get("/v1/orders")).json()]
    assert open_ids == [ids[0]]


async def test_kill_switch_flattens_when_configured(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(
        make_config(risk={"emergency": {"kill_switch": {"flatten_positions": True}}})
    )
    async with api_client(service) as client:
        await client.post("/v1/signals", json=signal("pos", quantity=10))
        report = (await client.post("/v1/kill", json={"reason": "flatten"})).json()
        assert report["flattened"] == ["AAPL"]
        assert await sim(service).positions() == []
        # Its intent was journaled like any order's, by the kill switch, with its decision.
        flatten = [o for o in service.journal.orders() if o.client_order_id.startswith("kill-")]
        assert len(flatten) == 1 and not flatten[0].external
        assert flatten[0].signal_id == flatten[0].client_order_id
        stored = service.journal.signal(flatten[0].client_order_id)
        assert stored is not None and stored.decision is not None
        # A new order is still blocked: only the kill switch's own orders bypass the halt.
        blocked = (await client.post("/v1/signals", json=signal("after"))).json()
        assert blocked["decision"] == "blocked"


async def test_three_strategy_failures_halt_and_a_success_resets(
    service: GatewayService, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    fail = {
        "strategy": "meanrev",
        "symbol": "AAPL",
        "ok": False,
        "failure_type": "data_error",
        "error": "feed gap",
    }
    assert (await client.post("/v1/outcomes", json=fail)).json()["consecutive"] == 1
    await client.post("/v1/outcomes", json={"strategy": "meanrev", "ok": True})
    assert (await client.get("/v1/status")).json()["failures"]["consecutive"] == 0
    for _ in range(3):
        await client.post("/v1/outcomes", json=fail)
    status = (await client.get("/v1/status")).json()
    assert status["state"] == "halted"
    assert status["halt"]["trigger"] == "technical_failure"
    assert status["failures"]["by_strategy"] == {"meanrev": 4}
    assert status["failures"]["by_symbol"] == {"AAPL": 4}
    bad = await client.post(
        "/v1/outcomes", json={"strategy": "x", "ok": False, "failure_type": "boom"}
    )
    assert bad.status_code == 422


async def _concurrent_heat_run(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], used_shares: int
) -> list[dict[str, Any]]:
    # Equity 150,000 and a 3% stop make the numbers exact: 100 shares at 100 is 0.2% heat.
    config = make_config(
        gateway={
            "brokers": {
                "simulated": {
                    "initial_cash": 150000,
                    "margin_multiplier": 4,
                    "quotes": {"XYZ": [99.99, 100.01]},
                }
            }
        },
        risk={
            "risk_management": {"max_portfolio_heat": 0.05, "max_single_position_risk": 0.03},
            "pre_trade": {"max_orders_per_second": 1000},
        },
    )
    service = await make_service(config)
    async with api_client(service) as client:
        seed = signal(
            "seed", symbol="XYZ", order_type="limit", limit_price=100, quantity=used_shares
        )
        assert (await client.post("/v1/signals", json=seed)).json()["decision"] == "accepted"
        bodies = [
            signal(f"c-{i}", symbol="XYZ", order_type="limit", limit_price=100, quantity=100)
            for i in range(50)
        ]
        answers = await asyncio.gather(*(client.post("/v1/signals", json=b) for b in bodies))
        status = (await client.get("/v1/status")).json()
    decisions = [a.json() for a in answers]
    for d in decisions:
        if d["decision"] == "rejected":
            assert [r["code"] for r in d["reasons"]] == ["portfolio_heat"]
    assert len(await sim(service).open_orders()) == 1 + sum(
        d["decision"] == "accepted" for d in decisions
    )
    assert status["risk"]["portfolio_heat"] <= 0.05
    return decisions


async def test_concurrent_signals_admit_exactly_what_fits_the_heat_limit(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """5% heat limit, 2.1% already used, 50 concurrent signals of 0.2% each: exactly 14 pass."""
    decisions = await _concurrent_heat_run(make_config, make_service, used_shares=1050)
    assert [d["decision"] for d in decisions].count("accepted") == 14


async def test_concurrent_signals_at_the_exact_boundary(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """2.2% used: the 14th order lands on exactly 5.00% and passes; the 15th does not."""
    decisions = await _concurrent_heat_run(make_config, make_service, used_shares=1100)
    assert [d["decision"] for d in decisions].count("accepted") == 14
    accepted = [d for d in decisions if d["decision"] == "accepted"]
    assert max(d["risk"]["heat_after"] for d in accepted) == 0.05


async def test_drawdown_emergency_halts_and_resume_refused_while_active(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(
        gateway={"brokers": {"simulated": {"initial_cash": 100000, "margin_multiplier": 4}}},
        risk={
            "risk_management": {"max_single_position_risk": 0.19, "max_portfolio_heat": 0.39},
            "emergency": {"resume_cooldown_s": 0},
        },
    )
    service = await make_service(config)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        assert (await client.post("/v1/signals", json=signal("lev", quantity=1000))).json()[
            "decision"
        ] == "accepted"
        # Falls 9%: 9% of 200,000 = 18,000 loss = 18% drawdown and daily loss -> emergency halt.
        await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 182, "ask": 182.02}])
        status = (await client.get("/v1/status")).json()
        assert status["state"] == "halted"
        assert status["halt"]["trigger"] == "daily_loss"
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409 and refused.json()["code"] == "trigger_active"
        forced = await admin.post("/v1/resume", json={"force": True, "auth_code": RESUME_CODE})
        assert forced.status_code == 200
    transitions = [e for e in service.journal.events() if e["kind"] == "halt.halt"]
    assert transitions[0]["measure"] >= transitions[0]["threshold"] == 0.05


async def test_daily_loss_limit_puts_the_gateway_in_reduce_only(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(
        gateway={"brokers": {"simulated": {"margin_multiplier": 4}}},
        risk={"risk_management": {"max_single_position_risk": 0.19, "max_portfolio_heat": 0.39}},
    )
    service = await make_service(config)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        await client.post("/v1/signals", json=signal("lev", quantity=1000))
        # A 1.5% fall on 200,000 = 3,000 = 3% daily loss: past the 2% limit, below 5% emergency.
        await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 197, "ask": 197.02}])
        status = (await client.get("/v1/status")).json()
        assert status["state"] == "reduce_only"
        more = (await client.post("/v1/signals", json=signal("more", quantity=1))).json()
        assert more["decision"] == "blocked"
        assert [r["code"] for r in more["reasons"]] == ["reduce_only"]
        less = (
            await client.post("/v1/signals", json=signal("less", side="sell", quantity=500))
        ).json()
        assert less["decision"] == "accepted"
    transition = [e for e in service.journal.events() if e["kind"] == "state_transition"]
    assert transition[0]["to"] == "reduce_only" and transition[0]["threshold"] == 0.02


async def test_safe_measures_never_change_the_state(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await client.post("/v1/signals", json=signal("small", quantity=10))
    for bid in (199.0, 201.0, 198.5, 202.0):
        await admin.post("/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": bid, "ask": bid + 0.02}])
    status = (await client.get("/v1/status")).json()
    assert status["state"] == "active" and status["halt"] is None


async def test_halt_survives_a_restart_with_its_reason(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first = await make_service(config)
    first.halt_trading("end of day drill", by="test")
    await first.stop()
    second = await make_service(config)
    summary = second.halt.summary()
    assert summary is not None
    assert summary["reason"] == "end of day drill" and summary["trigger"] == "manual"


async def test_corrupt_halt_state_starts_halted(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first = GatewayService(config, environ=TEST_ENV)  # a gateway that ran here before
    await first.start()
    await first.stop()
    state_file = config.gateway.state_dir / "halt_state.json"
    state_file.write_text('{"version": 1, "current": {"reason": ')
    service = await make_service(config)
    assert service.engine.state.value == "halted"
    summary = service.halt.summary()
    assert summary is not None and summary["trigger"] == "state_unreadable"
    async with api_client(service) as client:
        decision = (await client.post("/v1/signals", json=signal("x"))).json()
        assert decision["decision"] == "blocked"
    assert json.loads(state_file.read_text())  # rewritten as a readable HALTED state


async def test_kill_switch_with_a_thousand_resting_orders_leaves_none_open(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    from gateway.models import Signal

    # A thousand signals take more than quotes.max_age_s (5 s) on a loaded machine: the quote
    # age is not what this test is about.
    config = make_config(
        gateway={"gateway": {"quotes": {"max_age_s": 3600}}},
        risk={"pre_trade": {"max_orders_per_second": 100000}},
    )
    service = await make_service(config)
    for i in range(1000):
        await service.engine.submit_signal(
            Signal(
                signal_id=f"r-{i}",
                strategy="s",
                symbol="AAPL",
                side="buy",
                quantity=1,
                order_type="limit",
                limit_price=50,
            )
        )
    assert len(await sim(service).open_orders()) == 1000
    report = await service.kill("thousand", by="test")
    assert report["cancelled"] == 1000 and report["failed"] == []
    assert await sim(service).open_orders() == []
    assert service.open_orders() == []


async def test_a_kill_interrupted_by_a_restart_is_completed_at_start(
    make_config: Callable[..., GatewayConfig],
) -> None:
    from brokers.simulated import SimulatedBroker

    config = make_config()
    first = GatewayService(config, environ=TEST_ENV)
    await first.start()
    async with api_client(first) as client:
        for n in range(3):
            resting = signal(f"rest-{n}", order_type="limit", limit_price=150, quantity=1)
            assert (await client.post("/v1/signals", json=resting)).json()["decision"] == "accepted"
    # The kill switch's halt was written, then the process died before it cancelled anything.
    first.halt.halt("fat finger", "kill_switch", by="api:strategy", kill_switch=True)
    await first.stop()

    again = GatewayService(config, environ=TEST_ENV)
    await again.start()
    try:
        broker = again.broker
        assert isinstance(broker, SimulatedBroker)
        assert await broker.open_orders() == []  # what the kill was for
        assert again.open_orders() == []
        assert again.halt.current is not None and again.halt.current.kill_switch
        report = again.journal.events("kill_switch", limit=1)
        assert report and report[0]["by"] == "restore" and len(report[0]["cancelled"]) == 3
    finally:
        await again.stop()

    # A kill that completed is not run again by the next start.
    third = GatewayService(config, environ=TEST_ENV)
    await third.start()
    try:
        assert len(third.journal.events("kill_switch")) == 1
    finally:
        await third.stop()
