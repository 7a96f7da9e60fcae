"""The client's order methods against the real routes (h-orders): read, list with filters,
move (PATCH) and cancel (DELETE) a resting limit order, 404 and 409 as GatewayClientError with
their codes; and every change arrives on the event stream, in order."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gateway.client import AsyncGatewayClient, GatewayClientError
from gateway.models import Order
from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, STRATEGY_TOKEN
from tests.integration.sse import serving
from tests.integration.test_client_events import take


async def test_rest_move_cancel_and_follow(service: GatewayService) -> None:
    async with serving(service) as url, AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
        events = gw.events(after=0, strategy="momentum")
        rested = await gw.submit(
            "rest-1", "momentum", "AAPL", "buy", 5, order_type="limit", limit_price=190
        )
        assert rested.decision == "accepted" and rested.order is not None
        coid = rested.order.client_order_id
        order = await gw.order(coid)
        assert order.strategy == "momentum" and order.limit_price == 190
        assert order.status in ("new", "accepted")
        assert [o.client_order_id for o in await gw.orders(strategy="momentum")] == [coid]
        assert await gw.orders(status="all", symbol="MSFT") == []
        moved = await gw.replace(coid, "move-1", limit_price=Decimal("191.5"))
        assert moved.decision == "accepted", moved
        assert (await gw.order(coid)).limit_price == Decimal("191.5")
        canceled = await gw.cancel(coid)
        assert canceled.status in ("canceled", "pending_cancel")
        with pytest.raises(GatewayClientError) as info:
            await gw.cancel(coid)
        assert info.value.status_code == 409 and info.value.code == "order_not_open"
        with pytest.raises(GatewayClientError) as info:
            await gw.order("gw-unknown")
        assert info.value.status_code == 404 and info.value.code == "order_not_found"
        async with AsyncGatewayClient(url, MEANREV_TOKEN) as other:
            with pytest.raises(GatewayClientError) as info:
                await other.order(coid)  # another strategy's order: as if unknown
            assert info.value.status_code == 404
        service.journal.commit_now()
        seen: list[Order] = []
        while not seen or seen[-1].status != "canceled":
            [event] = await take(events, 1)
            if isinstance(event.data, Order) and event.data.client_order_id == coid:
                seen.append(event.data)
        await events.aclose()
        limits = [o.limit_price for o in seen]
        assert Decimal("190") in limits and Decimal("191.5") in limits
        assert limits.index(Decimal("190")) < limits.index(Decimal("191.5"))
        assert seen[-1].status == "canceled"


async def test_pages_of_orders_and_fills_add_up_to_the_whole(service: GatewayService) -> None:
    """limit/after on the client: the pages, read one after the other, are the whole answer in
    order with nothing twice; a limit that is not a positive integer never reaches the wire."""
    async with serving(service) as url, AsyncGatewayClient(url, STRATEGY_TOKEN) as gw:
        for i in range(5):
            side = "buy" if i % 2 == 0 else "sell"
            assert (
                await gw.submit(f"page-{i}", "momentum", "AAPL", side, 1)
            ).decision == "accepted"
        for _ in range(200):  # the fills come through the broker's events
            if len(await gw.fills()) == 5:
                break
            await asyncio.sleep(0.01)
        whole_orders = [o.client_order_id for o in await gw.orders(status="all")]
        whole_fills = [f.fill_id for f in await gw.fills()]
        assert len(whole_orders) == 5 and len(whole_fills) == 5
        orders: list[str] = []
        fills: list[str] = []
        while len(orders) < 5:
            after = orders[-1] if orders else None
            page = await gw.orders(status="all", limit=2, after=after)
            assert 1 <= len(page) <= 2
            orders += [o.client_order_id for o in page]
        while len(fills) < 5:
            chunk = await gw.fills(limit=2, after=fills[-1] if fills else None)
            assert 1 <= len(chunk) <= 2
            fills += [f.fill_id for f in chunk]
        assert orders == whole_orders and fills == whole_fills
        assert await gw.orders(status="all", after=orders[-1]) == []
        assert await gw.fills(after=fills[-1]) == []
        with pytest.raises(ValueError, match="limit"):
            await gw.fills(limit=0)
