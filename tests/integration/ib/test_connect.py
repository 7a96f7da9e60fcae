"""Connecting to (fake) TWS: client id, accounts, readiness, ports, refusals."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from brokers.base import Broker, ConnectionEvent
from brokers.errors import BrokerError, BrokerUnavailable, NotSent
from brokers.ib.broker import IBBroker, default_port
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import ACCOUNT, MakeBroker, is_connection, next_event


def test_port_follows_the_mode_unless_given() -> None:
    assert default_port(paper=True) == 4002 and default_port(paper=False) == 4001
    assert default_port(paper=True, gateway=False) == 7497
    assert default_port(paper=False, gateway=False) == 7496
    assert IBBroker().port == 4002
    assert IBBroker(paper=False).port == 4001
    assert IBBroker(paper=False, gateway=False).port == 7496
    assert IBBroker(port=4999, paper=False).port == 4999


async def test_connects_with_its_client_id_and_is_ready_with_account_data(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    tws.state.positions["MSFT"] = (-5.0, 410.0)
    broker = await make_broker(client_id=23)
    assert isinstance(broker, Broker)
    assert broker.connected and tws.clients == [23]
    assert broker.account_id == ACCOUNT
    # ready means the start-up answers are in: no waiting needed for any of these
    account = await broker.account()
    assert account.equity == Decimal("100000") and account.cash == Decimal("100000")
    assert account.buying_power == Decimal("400000")
    assert account.day_start_equity == Decimal("99500")
    [position] = await broker.positions()
    assert (position.symbol, position.qty, position.avg_price) == ("MSFT", -5, 410)
    assert await broker.open_orders() == []
    # the start-up requests all reached TWS: positions, open and completed orders, account
    # updates, executions
    for msg_id in (61, 5, 99, 6, 7):
        assert tws.requests_of(msg_id), msg_id


@pytest.mark.parametrize(
    ("msg_id", "what"),
    [("62", "positions"), ("53", "open orders"), ("54", "account updates"), ("55", "executions")],
)
async def test_not_ready_until_the_start_up_answers_are_in(
    tws: FakeTWS, make_broker: MakeBroker, msg_id: str, what: str
) -> None:
    tws.state.withhold.add(msg_id)  # TWS never finishes this answer
    broker = await make_broker(connect=False, connect_timeout=0.3)
    with pytest.raises(BrokerUnavailable, match=what):
        await broker.connect()
    assert not broker.connected


async def test_day_start_equity_is_none_when_ib_does_not_send_it(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    del tws.state.account_values["PreviousDayEquityWithLoanValue"]
    broker = await make_broker()
    assert (await broker.account()).day_start_equity is None


async def test_several_accounts_without_a_choice_are_refused(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    tws.state.accounts = ["DU111", "DU222"]
    broker = await make_broker(connect=False)
    with pytest.raises(BrokerError, match="account") as caught:
        await broker.connect()
    assert caught.value.code == "account_ambiguous" and not caught.value.transient
    assert not broker.connected
    await tws.wait_until(lambda: tws.clients == [])  # and it hung up


async def test_a_named_account_is_picked_among_several(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    tws.state.accounts = ["DU111", "DU222"]
    broker = await make_broker(account="DU222")
    assert broker.account_id == "DU222"
    assert (await broker.account()).equity == Decimal("100000")


async def test_an_account_ib_does_not_manage_is_refused(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    broker = await make_broker(connect=False, account="DU999")
    with pytest.raises(BrokerError) as caught:
        await broker.connect()
    assert caught.value.code == "account_unknown"


async def test_nothing_listening_is_unavailable_with_one_line_saying_what_to_check(
    make_broker: MakeBroker, tws: FakeTWS
) -> None:
    await tws.stop()
    broker = await make_broker(connect=False)
    with pytest.raises(BrokerUnavailable) as caught:
        await broker.connect()
    assert caught.value.message == (
        f"no TWS/IB Gateway API at 127.0.0.1:{tws.port}: is it running, with the API enabled "
        "and this port configured?"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_listener_that_never_answers_the_handshake_is_one_line_too(
    make_broker: MakeBroker,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, never speaks the API

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        broker = await make_broker(connect=False, port=port, client_id=31, connect_timeout=0.3)
        with pytest.raises(BrokerUnavailable) as caught:
            await broker.connect()
    finally:
        server.close()
    assert caught.value.message == (
        f"TWS/IB Gateway at 127.0.0.1:{port} did not complete the API handshake within 0.3s: "
        "is the API enabled, this host trusted, and client id 31 free?"
    )


async def test_a_client_id_in_use_is_unavailable(make_broker: MakeBroker) -> None:
    await make_broker(client_id=5)
    second = await make_broker(connect=False, client_id=5, connect_timeout=1.0)
    with pytest.raises(BrokerUnavailable):
        await second.connect()


async def test_requests_before_connect_are_not_sent(make_broker: MakeBroker) -> None:
    broker = await make_broker(connect=False)
    assert not broker.connected
    with pytest.raises(NotSent):
        await broker.account()
    with pytest.raises(NotSent):
        await broker.cancel_all()


async def test_events_called_after_connect_still_see_what_happened_since(
    tws: FakeTWS, broker: IBBroker
) -> None:
    # the gateway connects, syncs, and only then starts consuming: nothing may be lost
    first = broker.events()
    connected = await next_event(first, lambda e: isinstance(e, ConnectionEvent))
    assert isinstance(connected, ConnectionEvent) and connected.connected
    # a later consumer gets its own stream, from its call on
    second = broker.events()
    await tws.drop_connections()
    for stream in (first, second):
        await next_event(stream, is_connection(False))


async def test_pacing_stays_below_ibs_limit(make_broker: MakeBroker) -> None:
    # IB disconnects clients that send more than ~50 messages a second; ib_async queues what
    # goes beyond its MaxRequests per RequestsInterval, which the adapter sets.
    default = await make_broker()
    assert default._ib is not None and default._ib.client.MaxRequests == 45
    slow = await make_broker(client_id=18, max_requests_per_s=10)
    assert slow._ib is not None and slow._ib.client.MaxRequests == 10
    assert slow._ib.client.RequestsInterval == 1
