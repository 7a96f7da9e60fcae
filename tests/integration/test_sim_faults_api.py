"""POST/GET /v1/sim/faults: admin only, simulated broker only, the body validated field by field,
and a drill seen through the gateway exactly like a real outage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, TEST_ENV, api_client, signal

NO_FAULTS = {"latency_ms": 0, "lose_submit_answers": 0, "fail_lookups_s": 0, "reject_submits": 0}


def sim(service: GatewayService) -> SimulatedBroker:
    assert isinstance(service.broker, SimulatedBroker)
    return service.broker


async def test_faults_are_off_by_default_and_a_post_answers_the_faults_in_force(
    admin: httpx.AsyncClient,
) -> None:
    assert (await admin.get("/v1/sim/faults")).json() == NO_FAULTS
    answer = await admin.post("/v1/sim/faults", json={"latency_ms": 5, "reject_submits": 2})
    assert answer.status_code == 200
    assert answer.json() == {**NO_FAULTS, "latency_ms": 5, "reject_submits": 2}
    assert (await admin.get("/v1/sim/faults")).json() == answer.json()
    # The body replaces the whole set: what it leaves out is off.
    answer = await admin.post("/v1/sim/faults", json={"lose_submit_answers": 1})
    assert answer.json() == {**NO_FAULTS, "lose_submit_answers": 1}
    assert (await admin.post("/v1/sim/faults", json={})).json() == NO_FAULTS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency": 5}, "latency"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": "slow"}, "latency_ms"),
        ({"reject_submits": 1.5}, "reject_submits"),
        ({"lose_submit_answers": -2}, "lose_submit_answers"),
        ({"fail_lookups_s": 10**9}, "fail_lookups_s"),
    ],
)
async def test_a_bad_body_is_a_422_naming_the_field_and_changes_nothing(
    admin: httpx.AsyncClient, service: GatewayService, body: dict[str, Any], field: str
) -> None:
    await admin.post("/v1/sim/faults", json={"reject_submits": 1})
    answer = await admin.post("/v1/sim/faults", json=body)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert sim(service).faults.reject_submits == 1


async def test_faults_need_the_admin_token(service: GatewayService) -> None:
    async with api_client(service) as strategy, api_client(service, None) as anonymous:
        for client, status in ((strategy, 403), (anonymous, 401)):
            assert (await client.get("/v1/sim/faults")).status_code == status
            posted = await client.post("/v1/sim/faults", json={"reject_submits": 1})
            assert posted.status_code == status
    assert sim(service).faults.reject_submits == 0


async def test_faults_exist_only_with_the_simulated_broker(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config(gateway={"gateway": {"broker": "alpaca"}})
    env = {**TEST_ENV, "ALPACA_API_KEY": "key", "ALPACA_SECRET_KEY": "secret"}
    service = GatewayService(config, environ=env)  # never started: nothing leaves this process
    try:
        async with api_client(service, ADMIN_TOKEN) as admin:
            assert (await admin.get("/v1/sim/faults")).status_code == 404
            assert (await admin.post("/v1/sim/faults", json={})).status_code == 404
    finally:
        service.journal.close()


async def test_drills_reach_the_gateway_as_a_refusal_and_as_a_lost_answer(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, service: GatewayService
) -> None:
    await admin.post("/v1/sim/faults", json={"reject_submits": 1})
    refused = (await client.post("/v1/signals", json=signal("refused"))).json()
    assert refused["decision"] == "rejected"
    assert [r["code"] for r in refused["reasons"]] == ["broker_rejected"]

    await admin.post("/v1/sim/faults", json={"lose_submit_answers": 1})
    landed = (await client.post("/v1/signals", json=signal("landed"))).json()
    # The answer was lost, the order had landed: the gateway finds it and never sends it twice.
    assert landed["decision"] == "accepted"
    coid = landed["order"]["client_order_id"]
    assert sim(service).submit_counts[coid] == 1
    assert [p["qty"] for p in (await client.get("/v1/positions")).json()] == [10]
    assert (await admin.get("/v1/sim/faults")).json() == NO_FAULTS  # both drills used up
