"""A replace (PATCH) on its way to the broker when the kill switch fires.

Guarantee pinned (DESIGN "Risk states and triggers": the kill switch cancels every open order at
the broker, including one on the wire; "Orders a strategy manages": the broker holds one live
order per client_order_id, never two): whether the replace lands before or after the kill's
cancel_all, nothing rests at the broker once the kill has returned and the replace answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderChange
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import OrderReplace
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.integration.test_attack3_group_kill import resting


class HeldReplaces(SimulatedBroker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2, **kwargs)
        self.hold = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        if self.hold:
            self.entered.set()
            await self.release.wait()
        return await super().replace(client_order_id, change)


@pytest.mark.parametrize("lands", ["before_cancel_all", "after_cancel_all"])
async def test_a_replace_on_the_wire_during_the_kill_leaves_nothing_resting(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], lands: str
) -> None:
    broker = HeldReplaces()
    service: GatewayService = await make_service(make_config(), broker=broker)
    decision = json.loads((await service.engine.submit_signal(resting("rk-1", 0))).decision_json)
    assert decision["decision"] == "accepted"
    coid = client_order_id("rk-1")
    broker.hold = True
    replacing = asyncio.create_task(
        service.engine.replaces.replace(
            coid, OrderReplace(signal_id="rk-1-r", limit_price=151, quantity=2), None
        )
    )
    await broker.entered.wait()
    if lands == "before_cancel_all":
        broker.hold = False
        broker.release.set()
        await asyncio.sleep(0)
    killing = asyncio.create_task(service.kill("drill", by="test"))
    for _ in range(20):
        await asyncio.sleep(0)
    broker.release.set()
    await asyncio.wait_for(killing, 10)
    with contextlib.suppress(Exception):  # an answer either way: what matters is the broker
        await asyncio.wait_for(replacing, 10)
    await asyncio.sleep(0.05)
    assert [o.client_order_id for o in await broker.open_orders()] == []
    assert service.open_orders() == []
