"""Attack: the position closes but the broker refuses to cancel its stop (an outage on that
one call). The follow logged it and gave up: the stop rested on a flat position and, when the
market reached it, sold 10 into nothing (a short, with allow_short false). Nothing looked
again: lost protection only watches positions, not stops left without one."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers.errors import BrokerError
from tests.conftest import api_client, signal


async def settle(until: Any, tries: int = 300) -> Any:
    for _ in range(tries):
        value = until()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("never settled")


async def test_a_stop_the_broker_would_not_cancel_is_cancelled_at_the_next_risk_sweep(
    service: Any,
) -> None:
    book = service.engine.book
    broker = service.broker
    async with api_client(service) as client:
        body = signal("rt-1", quantity=10, stop_loss_price=190)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
        stop = entry + "-sl"
        await settle(
            lambda: stop in book.orders and book.orders[stop].order.status.value == "accepted"
        )
        real_cancel = broker.cancel
        refusing = True

        async def cancel(client_order_id: str) -> None:
            if refusing and client_order_id == stop:
                raise BrokerError("cancel refused: try later")
            await real_cancel(client_order_id)

        broker.cancel = cancel
        sold = await client.post("/v1/signals", json=signal("rt-2", side="sell", quantity=10))
        assert sold.json()["decision"] == "accepted"
        await settle(lambda: book.position_qty("AAPL") == 0)
        await asyncio.sleep(0.05)
        await service.engine.legs.drain()
        assert stop in [o.client_order_id for o in await broker.open_orders()]  # refused
        refusing = False
        await service.risk_sweep()
        await service.engine.legs.drain()
        assert [o.client_order_id for o in await broker.open_orders()] == []
        broker.set_quote("AAPL", bid=185.0, ask=185.1)
        await asyncio.sleep(0.1)
        assert await broker.positions() == []
