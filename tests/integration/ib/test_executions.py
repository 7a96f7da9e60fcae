"""After a restart of the adapter, an order that completed before it is neither adopted nor
re-emitted at connect (IB reports completed orders without their order id): ``executions``
reads them back by client_order_id, each with IB's execId, the fill_id a live event carried."""

from __future__ import annotations

from decimal import Decimal

from brokers.base import OrderEvent, OrderRequest
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import MakeBroker, events_until_marker


async def test_executions_of_an_order_completed_before_a_restart(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    first = await make_broker()
    live = first.events()
    await first.submit(
        OrderRequest(
            client_order_id="done-1",
            symbol="AAPL",
            side="buy",
            quantity=5,
            order_type="limit",
            limit_price=190,
        )
    )
    placed = tws.order_by_ref("done-1")
    assert placed is not None
    tws.fill(placed, 2, 200.0)
    tws.fill(placed, 3, 200.5)
    seen = await events_until_marker(tws, first, live)
    live_fills = [e.fill for e in seen if isinstance(e, OrderEvent) and e.fill is not None]
    await first.close()

    again = await make_broker()
    events = again.events()
    await again.quote("MARK")  # the marker's market data, asked by this adapter too
    restarted = await events_until_marker(tws, again, events)
    assert [e for e in restarted if isinstance(e, OrderEvent)] == []  # nothing re-emitted
    told = await again.executions(["done-1", "unknown"])
    assert [(f.fill_id, f.quantity, f.price) for f in told] == [
        (f.fill_id, f.quantity, f.price) for f in live_fills
    ]
    assert [f.quantity for f in told] == [Decimal(2), Decimal(3)]
    assert {(f.client_order_id, f.side.value, f.symbol) for f in told} == {
        ("done-1", "buy", "AAPL")
    }
    assert await again.executions(["unknown"]) == []


async def test_executions_of_another_client_id_are_not_ours(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    other = await make_broker(client_id=18)
    await other.submit(
        OrderRequest(client_order_id="theirs", symbol="AAPL", side="buy", quantity=1)
    )
    placed = tws.order_by_ref("theirs")
    assert placed is not None
    tws.fill(placed, 1, 200.0)
    ours = await make_broker()
    assert await ours.executions(["theirs"]) == []
