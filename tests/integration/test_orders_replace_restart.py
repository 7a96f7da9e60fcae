"""A replace whose intent was committed but whose decision never was (the gateway died while the
broker had it) is decided at the next start from the broker's order: never a halt for an
unreadable signal, never a second replace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from brokers.base import OrderChange
from gateway.config import GatewayConfig
from gateway.models import OrderReplace
from gateway.pipeline.ids import client_order_id
from gateway.pipeline.replace import replace_body, replace_hash
from gateway.service import GatewayService
from tests.conftest import api_client
from tests.fakes.replacing_sim import ReplacingSim
from tests.integration.test_orders_cancel import rest


@pytest.mark.parametrize("landed", [True, False])
async def test_an_undecided_replace_is_decided_from_the_broker_at_start(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], landed: bool
) -> None:
    config = make_config()
    sim = ReplacingSim(initial_cash=100000, quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
    first: GatewayService = await make_service(config, broker=sim)
    async with api_client(first) as client:
        await client.post("/v1/signals", json=rest("base"))
    coid = client_order_id("base")
    patch = OrderReplace(signal_id="rp-1", quantity=7)
    body = replace_body(coid, patch)
    first.journal.commit_now(
        first.journal.record_replace_intent(
            signal_id="rp-1",
            body_hash=replace_hash(body),
            body=body,
            strategy="momentum",
            symbol="AAPL",
            client_order_id=coid,
            status="accepted",
        )
    )
    if landed:
        await sim.replace(coid, OrderChange(quantity=7))
    await first.stop()  # as if it died here: the decision was never written

    again: GatewayService = await make_service(config, broker=sim)
    assert not again.halt.is_halted
    stored = again.journal.signal("rp-1")
    assert stored is not None and stored.decision is not None
    decision = json.loads(stored.decision)
    async with api_client(again) as client:
        order = (await client.get(f"/v1/orders/{coid}")).json()
        replay = await client.patch(f"/v1/orders/{coid}", json={"signal_id": "rp-1", "quantity": 7})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == decision
    if landed:
        assert decision["decision"] == "accepted" and decision["order"]["quantity"] == 7
        assert order["quantity"] == 7
    else:
        assert decision["decision"] == "rejected"
        assert [r["code"] for r in decision["reasons"]] == ["broker_unavailable"]
        assert order["quantity"] == 5
    assert len(sim.replaces) == (1 if landed else 0)
