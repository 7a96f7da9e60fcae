"""Fills made while the adapter was cut off from IB arrive afterwards, each exactly once: after a
dropped socket (connectAsync's reqExecutions) and after IB's own link codes (1100, then 1102:
the adapter asks reqExecutions itself)."""

from __future__ import annotations

from decimal import Decimal

from brokers.base import BrokerEvent, Fill, OrderEvent, OrderRequest
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import events_until_marker, is_connection, next_event


def resting(cid: str, price: float = 199.0, qty: int = 10) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="buy", quantity=qty,
                        order_type="limit", limit_price=price)  # fmt: skip


async def _fills_until_quiet(tws: FakeTWS, broker: IBBroker, events: object) -> list[Fill]:
    """Every fill event up to a marker quote pushed now."""
    seen = await events_until_marker(tws, broker, events)
    return [e.fill for e in seen if isinstance(e, OrderEvent) and e.fill is not None]


async def test_fills_while_the_socket_was_down_arrive_exactly_once(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(resting("gap-1"))
    placed = tws.order_by_ref("gap-1")
    assert placed is not None
    tws.fill(placed, 4, 199.0)  # seen live
    assert [f.quantity for f in await _fills_until_quiet(tws, broker, events)] == [4]
    await tws.stop()
    await next_event(events, is_connection(False))
    tws.fill(placed, 6, 198.5)  # while nobody listens
    await tws.start()
    seen: list[BrokerEvent] = []
    await next_event(events, lambda e: seen.append(e) is None and is_connection(True)(e))
    fills = [e.fill for e in seen if isinstance(e, OrderEvent) and e.fill is not None]
    fills += await _fills_until_quiet(tws, broker, events)
    assert [(f.quantity, f.price) for f in fills] == [(6, Decimal("198.5"))]  # not the 4 again
    [ex] = [e for e in tws.state.executions if e.shares == 6]
    assert fills[0].fill_id == ex.exec_id  # IB's execId: what the gateway dedupes by
    order = await broker.get_order("gap-1")
    assert order is not None and (order.status, order.filled_quantity) == ("filled", 10)
    # another reconnect: IB reports both executions again, the adapter none of them
    await tws.drop_connections()
    seen.clear()
    await next_event(events, lambda e: seen.append(e) is None and is_connection(True)(e))
    assert [e for e in seen if isinstance(e, OrderEvent) and e.fill is not None] == []
    assert await _fills_until_quiet(tws, broker, events) == []


async def test_fills_while_ib_link_was_lost_are_asked_for_after_1102(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(resting("lnk-1"))
    placed = tws.order_by_ref("lnk-1")
    assert placed is not None
    tws.broadcast_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    await next_event(events, is_connection(False))
    tws.state.withhold.add("11")  # the live execDetails never comes
    tws.fill(placed, 10, 198.0)
    tws.state.withhold.discard("11")
    executions_asked = len(tws.requests_of(7))
    tws.broadcast_error(1102, "Connectivity between IB and Trader Workstation has been "
                        "restored - data maintained.")  # fmt: skip
    await next_event(events, is_connection(True))
    await tws.wait_until(lambda: len(tws.requests_of(7)) > executions_asked)
    fill_event = await next_event(
        events, lambda e: isinstance(e, OrderEvent) and e.fill is not None
    )
    assert isinstance(fill_event, OrderEvent) and fill_event.fill is not None
    assert (fill_event.fill.quantity, fill_event.fill.price) == (10, Decimal("198"))
    assert fill_event.order.status == "filled"
    assert await _fills_until_quiet(tws, broker, events) == []  # once
