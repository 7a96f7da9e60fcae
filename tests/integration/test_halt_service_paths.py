"""The halt and the failure tracker as the running gateway uses them, on an injected clock.

- The resume cooldown runs from the first halt: a repeated halt or a kill switch does not restart
  it, through the API and across a restart.
- The halt file is the state (the halt in force and the last resume, nothing else); the history
  of halts, repeats and resumes is in the journal.
- Three consecutive failures of a strategy halt trading (two do not), stamped with the
  gateway's clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import GatewayConfig
from tests.conftest import ADMIN_TOKEN, api_client, signal

START = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
COOLDOWN_S = 300


class Clock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def halt_file(config: GatewayConfig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (config.gateway.state_dir / "halt_state.json").read_text("utf-8")
    )
    return data


async def test_cooldown_runs_from_the_first_halt_not_a_repeated_one(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    clock = Clock()
    config = make_config(risk={"emergency": {"resume_cooldown_s": COOLDOWN_S}})
    service = await make_service(config, clock=clock)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        assert (await client.post("/v1/halt", json={"reason": "first"})).status_code == 200
        clock.advance(200)
        again = (await client.post("/v1/halt", json={"reason": "second"})).json()
        assert again["halt"]["reason"] == "first"
        assert again["halt"]["since"] == START.isoformat()
        assert again["halt"]["resume_allowed_at"] == (START + timedelta(seconds=300)).isoformat()
        clock.advance(50)
        killed = (await client.post("/v1/kill", json={"reason": "kill"})).json()
        assert killed["status"]["halt"]["since"] == START.isoformat()
        clock.advance(49.9)  # 299.9 s after the first halt, 99.9 s after the second
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409
        assert refused.json()["code"] == "cooldown_active"
        assert refused.json()["retry_after_s"] == 0.1
        clock.advance(0.1)  # exactly 300 s after the first halt
        resumed = await admin.post("/v1/resume", json={})
        assert resumed.status_code == 200
        assert resumed.json()["state"] == "active"


async def test_cooldown_still_runs_from_the_first_halt_after_a_restart(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    clock = Clock()
    config = make_config(risk={"emergency": {"resume_cooldown_s": COOLDOWN_S}})
    first = await make_service(config, clock=clock)
    first.halt_trading("first", by="test")
    clock.advance(100)
    first.halt_trading("second", by="test")
    await first.stop()
    clock.advance(199)
    second = await make_service(config, clock=clock)
    status = second.status()
    assert status["state"] == "halted"
    assert (status["halt"]["reason"], status["halt"]["since"]) == ("first", START.isoformat())
    async with api_client(second, ADMIN_TOKEN) as admin:
        refused = await admin.post("/v1/resume", json={})
        assert refused.status_code == 409
        assert refused.json()["retry_after_s"] == 1.0
        clock.advance(1)
        assert (await admin.post("/v1/resume", json={})).status_code == 200


async def test_the_halt_file_is_the_state_and_the_journal_the_history(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    clock = Clock()
    config = make_config(risk={"emergency": {"resume_cooldown_s": COOLDOWN_S}})
    service = await make_service(config, clock=clock)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        await client.post("/v1/halt", json={"reason": "desk says stop"})
        halted = halt_file(config)
        assert halted == {
            "schema_version": 2,
            "current": {
                "reason": "desk says stop",
                "trigger": "manual",
                "since": START.isoformat(),
                "kill_switch": False,
                "by": "api:strategy",
                "measure": None,
                "threshold": None,
            },
            "last_resume_at": None,
        }
        blocked = (await client.post("/v1/signals", json=signal("b1"))).json()
        assert blocked["decision"] == "blocked"
        clock.advance(10)
        await client.post("/v1/halt", json={"reason": "again"})
        assert halt_file(config) == halted  # a repeat and a blocked signal change no state
        clock.advance(COOLDOWN_S)
        assert (await admin.post("/v1/resume", json={})).status_code == 200
    assert halt_file(config) == {
        "schema_version": 2,
        "current": None,
        "last_resume_at": clock.now.isoformat(),
    }
    history = [e for e in reversed(service.journal.events()) if e["kind"].startswith("halt.")]
    assert [e["kind"] for e in history] == ["halt.halt", "halt.halt_repeated", "halt.resume"]
    assert history[1]["requested"]["reason"] == "again"
    assert (history[2]["reason"], history[2]["blocked"]) == ("desk says stop", 1)
    assert history[2]["at"] == clock.now.isoformat()


async def test_three_consecutive_failures_halt_trading_at_the_gateways_clock(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    start = datetime.now(UTC)  # the simulated market's quotes are stamped with the real time
    clock = Clock(start)
    config = make_config(risk={"emergency": {"failure_threshold": 3}})
    service = await make_service(config, clock=clock)
    fail = {"strategy": "meanrev", "symbol": "AAPL", "ok": False, "error": "no bars"}
    async with api_client(service) as client:
        for i in range(2):
            clock.advance(1)
            answer = (await client.post("/v1/outcomes", json=fail)).json()
            assert answer["consecutive"] == i + 1
            assert answer["recent"][-1]["at"] == clock.now.isoformat()
        status = (await client.get("/v1/status")).json()
        assert status["state"] == "active"  # two failures are not a streak of three
        accepted = (await client.post("/v1/signals", json=signal("ok1"))).json()
        assert accepted["decision"] == "accepted"
        clock.advance(1)
        third = (await client.post("/v1/outcomes", json=fail)).json()
        assert third["consecutive"] == 3
        status = (await client.get("/v1/status")).json()
        assert status["state"] == "halted"
        assert status["halt"]["trigger"] == "technical_failure"
        assert status["halt"]["since"] == clock.now.isoformat()
        assert status["halt"]["reason"].startswith("3 consecutive failures of strategy meanrev")
        assert [f["at"] for f in status["failures"]["recent"]] == [
            (start + timedelta(seconds=s)).isoformat() for s in (1, 2, 3)
        ]
        blocked = (await client.post("/v1/signals", json=signal("after"))).json()
        assert blocked["decision"] == "blocked"
        assert [r["code"] for r in blocked["reasons"]] == ["halted"]
