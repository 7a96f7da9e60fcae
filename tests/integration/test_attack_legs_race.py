"""Attack: two sells racing on a protected position. Each fill makes the legs follow the
position; when the first follow's replace is slow on the wire and the second's fast, the
broker applies the second (2 left) and then the first (6 left): the stop covers 6 of a
position of 2, and firing it sells the position 4 short."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers.base import BrokerOrder, OrderChange
from tests.conftest import api_client, signal


async def settle(until: Any, tries: int = 300) -> Any:
    for _ in range(tries):
        value = until()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("never settled")


async def test_legs_follow_two_racing_sells_to_the_last_position(service: Any) -> None:
    book = service.engine.book
    broker = service.broker
    real_replace = broker.replace
    calls: list[str] = []

    async def replace(client_order_id: str, change: OrderChange) -> BrokerOrder:
        calls.append(client_order_id)
        # The first replace of each leg is slow on the wire, later ones are fast.
        slow = calls.count(client_order_id) == 1
        await asyncio.sleep(0.3 if slow else 0.01)
        return await real_replace(client_order_id, change)

    broker.replace = replace
    async with api_client(service) as client:
        body = signal("race-1", quantity=10, stop_loss_price=190, take_profit_price=220)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
        legs = [entry + "-sl", entry + "-tp"]
        await settle(
            lambda: all(
                c in book.orders and book.orders[c].order.status.value == "accepted" for c in legs
            )
        )
        first = await client.post("/v1/signals", json=signal("race-2", side="sell", quantity=4))
        assert first.json()["decision"] == "accepted"
        await asyncio.sleep(0.05)  # the first follow is on the wire
        second = await client.post("/v1/signals", json=signal("race-3", side="sell", quantity=4))
        assert second.json()["decision"] == "accepted"
        await asyncio.sleep(0.05)
        await service.engine.legs.drain()
        await asyncio.sleep(0.05)
        await service.engine.legs.drain()
        assert book.position_qty("AAPL") == 2
        at_broker = {o.client_order_id: o for o in await broker.open_orders()}
        assert {c: at_broker[c].remaining_quantity for c in legs} == {c: 2 for c in legs}
