"""Dropped sockets, TWS restarts, adapter restarts and IB's link codes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from tenacity import RetryCallState, Retrying

from brokers.base import ConnectionEvent, OrderEvent, OrderRequest, QuoteEvent
from brokers.errors import BrokerUnavailable, NotSent
from brokers.ib.broker import IBBroker
from brokers.ib.reconnect import reconnect_wait
from tests.fakes.fake_tws import FakeTWS, msg_completed_order
from tests.integration.ib.support import (
    FAST,
    MakeBroker,
    is_connection,
    is_order,
    is_quote,
    next_event,
)


def resting(cid: str, price: float = 150.0) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="buy", quantity=5,
                        order_type="limit", limit_price=price)  # fmt: skip


async def test_a_dropped_socket_is_reported_at_once_then_reconnected(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await next_event(events, is_connection(True))  # the first connect, from the backlog
    await tws.drop_connections()
    down = await next_event(events, lambda e: isinstance(e, ConnectionEvent))
    assert isinstance(down, ConnectionEvent) and down.connected is False
    assert not broker.connected
    up = await next_event(events, lambda e: isinstance(e, ConnectionEvent))
    assert isinstance(up, ConnectionEvent) and up.connected is True
    assert broker.connected and tws.clients == [17]  # the same client id again


async def test_while_down_requests_are_unavailable_and_quotes_stop(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    before = await broker.quote("AAPL")
    await tws.stop()  # TWS is gone: reconnect attempts fail and back off
    await next_event(events, is_connection(False))
    assert not broker.connected
    with pytest.raises(NotSent):  # nothing left: a retry needs no look-up first
        await broker.submit(resting("down-1"))
    assert tws.order_by_ref("down-1") is None
    with pytest.raises(NotSent):
        await broker.cancel_all()
    # ib_async forgot the account with the socket: no figures rather than empty ones
    with pytest.raises(BrokerUnavailable):
        await broker.positions()
    with pytest.raises(BrokerUnavailable):
        await broker.account()
    # the last quote stays what it was, with its old timestamp: the gateway sees it age
    assert await broker.quote("AAPL") == before
    tws.state.quotes["AAPL"] = (201.0, 201.1)
    await tws.start()
    await next_event(events, is_connection(True))
    # market data is asked for again on the new connection
    fresh = await next_event(events, is_quote("AAPL"))
    assert isinstance(fresh, QuoteEvent) and fresh.quote.bid == Decimal("201")
    assert fresh.quote.ts > before.ts


async def test_after_a_tws_restart_orders_are_recognised_by_order_ref(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    order = await broker.submit(resting("keep-1"))
    await tws.restart()
    await next_event(events, is_connection(False))
    await next_event(events, is_connection(True))
    [again] = await broker.open_orders()
    assert (again.client_order_id, again.broker_order_id) == ("keep-1", order.broker_order_id)
    # and new orders never reuse the id
    new = await broker.submit(resting("keep-2"))
    assert int(new.broker_order_id) > int(order.broker_order_id)


async def test_a_fill_while_disconnected_is_reported_after_reconnecting(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(resting("gap-1", 199.0))
    await tws.stop()
    await next_event(events, is_connection(False))
    tws.set_quote("AAPL", 198.5, 198.9)  # the order fills while nobody listens
    await tws.start()
    filled = await next_event(events, is_order("gap-1", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert filled.fill.price == Decimal("198.9")
    await next_event(events, is_connection(True))  # after the news, the reconcile signal


async def test_a_restarted_adapter_recognises_its_orders(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    first = await make_broker()
    order = await first.submit(resting("restart-1"))
    await first.close()
    await tws.wait_until(lambda: tws.clients == [])
    second = await make_broker()  # same client id, a fresh process as far as it knows
    [again] = await second.open_orders()
    assert again.client_order_id == "restart-1"
    assert again.broker_order_id == order.broker_order_id
    assert (again.symbol, again.quantity, again.limit_price) == ("AAPL", 5, Decimal("150"))
    # submit is still idempotent across the restart: no second order at IB
    assert (await second.submit(resting("restart-1"))).broker_order_id == order.broker_order_id
    assert len(tws.requests_of(3)) == 1
    # and it can still cancel it
    events = second.events()
    await second.cancel("restart-1")
    await next_event(events, is_order("restart-1", "canceled"))


async def test_ib_link_codes_move_the_connection_state(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    tws.broadcast_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    down = await next_event(events, is_connection(False))
    assert isinstance(down, ConnectionEvent) and down.reason.startswith("1100")
    assert not broker.connected
    tws.broadcast_error(1102, "Connectivity between IB and Trader Workstation has been "
                        "restored - data maintained.")  # fmt: skip
    up = await next_event(events, is_connection(True))
    assert isinstance(up, ConnectionEvent) and up.reason.startswith("1102")
    assert broker.connected


async def test_data_lost_restore_resubscribes_market_data(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    await broker.quote("AAPL")
    tws.broadcast_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    await next_event(events, is_connection(False))
    tws.broadcast_error(1101, "Connectivity between IB and TWS has been restored- data lost.")
    await next_event(events, is_connection(True))
    await tws.wait_until(lambda: len(tws.requests_of(1)) == 2)  # reqMktData again
    assert tws.requests_of(2)  # after cancelling the old subscription


async def test_farm_status_is_recorded_without_touching_the_connection(
    tws: FakeTWS, broker: IBBroker
) -> None:
    await broker.quote("AAPL")  # subscribed, so the marker quote below reaches it
    events = broker.events()
    await next_event(events, is_connection(True))  # the first connect, from the backlog
    tws.broadcast_error(2103, "Market data farm connection is broken:usfarm")
    tws.broadcast_error(2104, "Market data farm connection is OK:usfarm")
    tws.set_quote("AAPL", 200.0, 200.1)  # a marker after the farm messages
    seen: list[object] = []
    await next_event(events, lambda e: seen.append(e) is None and is_quote("AAPL")(e))
    assert not any(isinstance(e, ConnectionEvent) for e in seen)
    assert broker.connected and 2103 in broker.farms and 2104 in broker.farms


async def test_an_order_lost_with_the_connection_can_be_submitted_again(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    broker = await make_broker(ack_timeout=0.2)
    events = broker.events()
    tws.state.swallow_orders = True  # the placeOrder never reaches IB
    lost = await broker.submit(resting("lost-1"))
    assert lost.status == "new"  # no answer within the ack timeout: not known either way
    tws.state.swallow_orders = False
    await tws.drop_connections()
    await next_event(events, is_connection(False))
    await next_event(events, is_connection(True))
    # IB reported it neither open nor done: it never got there, so a retry may place it
    assert await broker.get_order("lost-1") is None
    again = await broker.submit(resting("lost-1"))
    assert again.status == "accepted"
    assert int(again.broker_order_id) > int(lost.broker_order_id)  # ids are never reused
    assert tws.order_by_ref("lost-1") is not None


async def test_a_cancel_while_disconnected_is_reported_from_completed_orders(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(resting("gone-1"))
    await tws.stop()
    await next_event(events, is_connection(False))
    placed = tws.order_by_ref("gone-1")
    assert placed is not None
    placed.status = "Cancelled"  # cancelled in TWS by hand while the adapter was away
    await tws.start()
    canceled = await next_event(events, is_order("gone-1", "canceled"))
    assert isinstance(canceled, OrderEvent)
    await next_event(events, is_connection(True))
    assert await broker.open_orders() == []


async def test_an_unsolicited_completed_order_does_not_break_the_adapter(
    tws: FakeTWS, broker: IBBroker
) -> None:
    # ib_async issue 128: a completedOrder with no request pending raises KeyError in the
    # decoder; it must stay a logged error there, not a dead connection here.
    events = broker.events()
    await broker.submit(resting("odd-1"))
    placed = tws.order_by_ref("odd-1")
    assert placed is not None
    tws.broadcast(msg_completed_order(tws.state, placed))
    await broker.cancel("odd-1")
    await next_event(events, is_order("odd-1", "canceled"))
    assert broker.connected


async def test_2110_is_a_lost_link_until_a_farm_is_back(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    tws.broadcast_error(2110, "Connectivity between Trader Workstation and server is broken. "
                        "It will be restored automatically.")  # fmt: skip
    down = await next_event(events, is_connection(False))
    assert isinstance(down, ConnectionEvent) and down.reason.startswith("2110")
    tws.broadcast_error(2104, "Market data farm connection is OK:usfarm")
    up = await next_event(events, is_connection(True))
    assert isinstance(up, ConnectionEvent) and up.reason.startswith("2104")


async def test_order_ids_stay_above_what_ib_reports_even_if_next_valid_id_is_lower(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    first = await make_broker()
    events = first.events()
    for n in range(3):
        await first.submit(resting(f"early-{n}", 250.0))  # marketable: fills at once
    done = await next_event(events, is_order("early-2", "filled"))
    assert isinstance(done, OrderEvent)
    await first.close()
    await tws.wait_until(lambda: tws.clients == [])
    tws.state.next_order_id = 1  # TWS's API order id sequence was reset
    second = await make_broker()
    new = await second.submit(resting("later-1"))
    assert int(new.broker_order_id) > int(done.order.broker_order_id)


class LosesItsCancellation(IBBroker):
    """Plays Python 3.11's ``asyncio.wait_for`` (used by ib_async's connect), which can answer a
    cancellation with the inner result or error when both arrive together."""

    async def _connect_once(self) -> None:
        try:
            await super()._connect_once()
        except asyncio.CancelledError:
            raise BrokerUnavailable("connect failed (and the cancellation was lost)") from None


async def test_closing_ends_the_reconnect_retries_even_if_a_cancellation_is_lost(
    tws: FakeTWS,
) -> None:
    broker = LosesItsCancellation("127.0.0.1", **{**FAST, "port": tws.port})
    await broker.connect()
    events = broker.events()
    await next_event(events, is_connection(True))
    await tws.stop()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers: each reconnect waits in the handshake

    reconnects = 0

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal reconnects
        reconnects += 1
        await silent(reader, writer)

    server = await asyncio.start_server(counted, "127.0.0.1", tws.port)
    try:
        await next_event(events, is_connection(False))
        async with asyncio.timeout(30):
            while reconnects == 0:  # noqa: ASYNC110 (a reconnect attempt is under way)
                await asyncio.sleep(0.01)
        closing = asyncio.create_task(broker.close())
        done, _ = await asyncio.wait({closing}, timeout=30)  # a safety net, not a time limit
        assert done, "close() never returned: the reconnect retries did not stop"
    finally:
        server.close()
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(name.startswith("ib-reconnect") for name in names)
    assert not broker.connected


def test_reconnect_waits_grow_to_the_ceiling_with_jitter() -> None:
    wait = reconnect_wait(1.0, 30.0)
    for failure in range(1, 10):
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = failure
        base = min(30.0, 2.0 ** (failure - 1))
        waits = [wait(state) for _ in range(50)]
        assert all(base <= w <= base + 0.2 for w in waits), (failure, waits)
        assert len(set(waits)) > 1
