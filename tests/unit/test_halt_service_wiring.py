"""The halt manager as the service wires it: the journal holds the halt history, the halt file
only the halt in force, and a halt or kill answers 200 with the halt in force on a broken disk.

These drive the real service and API (simulated broker, in-process ASGI transport).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import httpx

from gateway.service import GatewayService
from tests.conftest import RESUME_CODE, signal


def halt_file(service: GatewayService) -> dict[str, Any]:
    """The halt file as JSON (read synchronously: a test helper, not service code)."""
    data: dict[str, Any] = json.loads(
        (service.config.gateway.state_dir / "halt_state.json").read_text()
    )
    return data


async def test_the_journal_holds_every_halt_and_the_file_only_the_halt_in_force(
    service: GatewayService, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    for i in range(50):
        answer = await client.post("/v1/halt", json={"reason": f"halt {i}"})
        assert answer.status_code == 200
    for i in range(3):
        blocked = (await client.post("/v1/signals", json=signal(f"b-{i}"))).json()
        assert blocked["decision"] == "blocked"
    status = (await client.get("/v1/status")).json()
    assert status["halt"]["reason"] == "halt 0"
    assert status["halt"]["blocked"] == 3
    assert status["halt"]["persisted"] is True
    on_disk = halt_file(service)
    assert set(on_disk) == {"schema_version", "current", "last_resume_at"}
    assert on_disk["current"]["reason"] == "halt 0"

    forced = await admin.post("/v1/resume", json={"force": True, "auth_code": RESUME_CODE})
    assert forced.status_code == 200

    kinds = [
        e["kind"] for e in service.journal.events(limit=10_000) if e["kind"].startswith("halt")
    ]
    assert kinds.count("halt.halt") == 1
    assert kinds.count("halt.halt_repeated") == 49
    assert kinds.count("halt.forced_resume") == 1
    assert "halt.blocked" not in kinds  # blocked signals are in the journal as decisions
    repeated = service.journal.events("halt.halt_repeated", limit=1)[0]
    assert repeated["detail"] == "manual: halt 49"
    resumed = service.journal.events("halt.forced_resume")[0]
    assert "blocked 3 signals while halted" in resumed["detail"]


async def test_halt_and_kill_answer_200_on_a_broken_disk(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    resting = signal("rest", order_type="limit", limit_price=150, quantity=1)
    assert (await client.post("/v1/signals", json=resting)).json()["decision"] == "accepted"
    in_the_way = service.config.gateway.state_dir / "halt_state.json"
    in_the_way.unlink()  # written at the state dir's first start
    in_the_way.mkdir()
    (in_the_way / "x").write_text("")  # the halt file can no longer be written

    halted = await client.post("/v1/halt", json={"reason": "disk drill"})
    assert halted.status_code == 200
    assert halted.json()["state"] == "halted"
    assert halted.json()["halt"]["persisted"] is False

    killed = await client.post("/v1/kill", json={"reason": "disk drill kill"})
    assert killed.status_code == 200
    assert killed.json()["cancelled"] == 1
    assert killed.json()["status"]["halt"]["kill_switch"] is True
    assert killed.json()["status"]["halt"]["persisted"] is False
    blocked = (await client.post("/v1/signals", json=signal("after"))).json()
    assert blocked["decision"] == "blocked"

    shutil.rmtree(in_the_way)
    assert service.halt.retry_persist() is True
    current = halt_file(service)["current"]
    assert (current["reason"], current["kill_switch"]) == ("disk drill", True)
    assert (await client.get("/v1/status")).json()["halt"]["persisted"] is True
