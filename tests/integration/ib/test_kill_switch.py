"""cancel_all: one reqGlobalCancel, then a per-order confirmation (or a per-order failure)."""

from __future__ import annotations

from brokers.base import OrderRequest
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import MakeBroker


def resting(cid: str, price: float = 150.0) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="buy", quantity=5,
                        order_type="limit", limit_price=price)  # fmt: skip


async def test_global_cancel_is_confirmed_order_by_order(tws: FakeTWS, broker: IBBroker) -> None:
    a = await broker.submit(resting("k-1"))
    b = await broker.submit(resting("k-2", 151.0))
    report = await broker.cancel_all()
    assert sorted(report.cancelled) == sorted([a.broker_order_id, b.broker_order_id])
    assert report.failed == {}
    assert len(tws.requests_of(58)) == 1  # one global cancel, no per-order cancels
    assert tws.requests_of(4) == []
    assert await broker.open_orders() == []
    assert all(not o.is_open for o in tws.state.orders.values())


async def test_an_order_that_is_not_confirmed_is_reported_failed(
    tws: FakeTWS, broker: IBBroker
) -> None:
    ok = await broker.submit(resting("k-3"))
    stuck = await broker.submit(resting("k-4", 151.0))
    placed = tws.order_by_ref("k-4")
    assert placed is not None
    tws.state.stuck_orders.add(placed.perm_id)  # IB never answers the cancel of this one
    report = await broker.cancel_all()
    assert report.cancelled == [ok.broker_order_id]
    assert list(report.failed) == [stuck.broker_order_id]
    assert "did not confirm" in report.failed[stuck.broker_order_id]
    [still_open] = await broker.open_orders()
    assert still_open.client_order_id == "k-4"


async def test_orders_of_other_clients_and_typed_into_tws_are_cancelled_too(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    other = await make_broker(client_id=42)
    await other.submit(resting("theirs"))
    manual = tws.add_manual_order("AAPL", "SELL", 1, 250.0)
    broker = await make_broker(client_id=17)
    mine = await broker.submit(resting("mine"))
    # this client only sees its own orders ...
    assert [o.client_order_id for o in await broker.open_orders()] == ["mine"]
    report = await broker.cancel_all()
    theirs = tws.order_by_ref("theirs")
    assert theirs is not None
    # ... but the kill switch reaches the whole account, reported by IB's permanent ids
    assert sorted(report.cancelled) == sorted(
        [mine.broker_order_id, f"perm:{theirs.perm_id}", f"perm:{manual.perm_id}"]
    )
    assert report.failed == {}
    assert tws.requests_of(16)  # reqAllOpenOrders listed and confirmed them


async def test_a_foreign_order_that_stays_open_is_reported_failed(
    tws: FakeTWS, broker: IBBroker
) -> None:
    manual = tws.add_manual_order("AAPL", "SELL", 1, 250.0)
    tws.state.stuck_orders.add(manual.perm_id)
    report = await broker.cancel_all()
    assert report.cancelled == []
    assert list(report.failed) == [f"perm:{manual.perm_id}"]


async def test_nothing_open_is_an_empty_report(broker: IBBroker) -> None:
    report = await broker.cancel_all()
    assert report.cancelled == [] and report.failed == {}
