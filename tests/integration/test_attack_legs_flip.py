"""Attack: legs follow their position, and a position that flips through zero takes its
legs' side with it. A long's sell stop left on the short that a larger sell made would,
when it fires, sell more: it grows the short instead of closing anything."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import ADMIN_TOKEN, api_client, signal


async def settle(until: Any, tries: int = 300) -> Any:
    for _ in range(tries):
        value = until()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("never settled")


async def test_a_sell_that_flips_a_protected_long_cancels_its_legs_never_resizes_them(
    make_config: Any, make_service: Any
) -> None:
    config = make_config(risk={"pre_trade": {"allow_short": True}})
    service = await make_service(config)
    book = service.engine.book
    async with api_client(service) as client:
        body = signal("fl-1", quantity=10, stop_loss_price=190, take_profit_price=220)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted", decision
        entry = decision["order"]["client_order_id"]
        legs = [entry + "-sl", entry + "-tp"]

        def working() -> bool:
            return all(
                c in book.orders and book.orders[c].order.status.value == "accepted" for c in legs
            )

        await settle(working)
        flip = signal("fl-2", side="sell", quantity=15)
        assert (await client.post("/v1/signals", json=flip)).json()["decision"] == "accepted"
        await settle(lambda: book.position_qty("AAPL") == -5)
        await service.engine.legs.drain()
        # The long's exits are gone: none of them rests on the short the sell opened.
        await settle(lambda: not any(c in book.orders for c in legs))
        rows = (await client.get("/v1/status")).json()["protection"]
        assert [(r["symbol"], r["qty"], r["protected"]) for r in rows] == [("AAPL", -5.0, False)]
        # The market falls through the old stop: nothing fires, the short stays 5.
        async with api_client(service, ADMIN_TOKEN) as admin:
            quote = [{"symbol": "AAPL", "bid": 185.0, "ask": 185.1}]
            assert (await admin.post("/v1/sim/quotes", json=quote)).status_code == 200
        await asyncio.sleep(0.2)
        assert book.position_qty("AAPL") == -5


def _working(book: Any, coids: list[str]) -> bool:
    return all(c in book.orders and book.orders[c].order.status.value == "accepted" for c in coids)


def _cover(book: Any, symbol: str, role: str) -> float:
    return float(
        sum(
            t.order.remaining_quantity
            for c, t in book.orders.items()
            if book.legs.get(c) == role and t.order.symbol == symbol
        )
    )


async def test_two_brackets_stops_together_never_cover_more_than_the_position_left(
    service: Any,
) -> None:
    """Two bracket buys of 10, then a plain sell of 5: the 15 left must be covered 15 times,
    not 20 (both stops firing would sell 20 of 15 and open a short the short rule forbids)."""
    book = service.engine.book
    async with api_client(service) as client:
        entries = []
        for n in (1, 2):
            body = signal(f"two-{n}", quantity=10, stop_loss_price=190, take_profit_price=220)
            decision = (await client.post("/v1/signals", json=body)).json()
            assert decision["decision"] == "accepted", decision
            entries.append(decision["order"]["client_order_id"])
        legs = [e + s for e in entries for s in ("-sl", "-tp")]
        await settle(lambda: _working(book, legs))
        sold = await client.post("/v1/signals", json=signal("two-3", side="sell", quantity=5))
        assert sold.json()["decision"] == "accepted"
        await settle(lambda: book.position_qty("AAPL") == 15)
        await asyncio.sleep(0.05)
        await service.engine.legs.drain()
        assert _cover(book, "AAPL", "stop_loss") == 15
        assert _cover(book, "AAPL", "take_profit") == 15
        # The market falls through the stops: the position closes, it never goes short.
        async with api_client(service, ADMIN_TOKEN) as admin:
            quote = [{"symbol": "AAPL", "bid": 185.0, "ask": 185.1}]
            assert (await admin.post("/v1/sim/quotes", json=quote)).status_code == 200
        await settle(lambda: book.position_qty("AAPL") <= 0)
        await asyncio.sleep(0.2)
        assert book.position_qty("AAPL") == 0


async def test_a_reducing_sell_that_names_a_stop_leaves_no_buy_stop_on_the_long(
    service: Any,
) -> None:
    """Long 10 with its bracket; a sell of 4 that names a stop above (valid for a sell): once
    it fills, the long's exits cover the 6 left, and no buy leg of the sell rests on the long
    (it would buy the 4 back when the market rises, growing the position)."""
    book = service.engine.book
    async with api_client(service) as client:
        body = signal("red-1", quantity=10, stop_loss_price=190, take_profit_price=220)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
        await settle(lambda: _working(book, [entry + "-sl", entry + "-tp"]))
        body = signal("red-2", side="sell", quantity=4, stop_loss_price=210)
        decision = (await client.post("/v1/signals", json=body)).json()
        assert decision["decision"] == "accepted", decision
        await settle(lambda: book.position_qty("AAPL") == 6)
        await asyncio.sleep(0.05)
        await service.engine.legs.drain()
        await settle(lambda: _cover(book, "AAPL", "stop_loss") == 6)
        buy_legs = [
            c for c, t in book.orders.items() if c in book.legs and t.order.side.value == "buy"
        ]
        assert buy_legs == []
        async with api_client(service, ADMIN_TOKEN) as admin:
            quote = [{"symbol": "AAPL", "bid": 211.0, "ask": 211.1}]
            assert (await admin.post("/v1/sim/quotes", json=quote)).status_code == 200
        await asyncio.sleep(0.2)
        assert book.position_qty("AAPL") == 6
