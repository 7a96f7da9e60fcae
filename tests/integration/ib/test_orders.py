"""Quotes and orders against the fake TWS: streaming, fills, resting limits, cancels, rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.base import BrokerEvent, Fill, OrderEvent, OrderRequest, QuoteEvent
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.ib.broker import IBBroker
from tests.fakes.fake_tws import FakeTWS
from tests.integration.ib.support import MakeBroker, is_order, is_quote, next_event


def market(cid: str, side: str = "buy", qty: int = 10, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol=symbol, side=side, quantity=qty)


def limit(cid: str, price: float, side: str = "buy", qty: int = 10) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side=side, quantity=qty,
                        order_type="limit", limit_price=price)  # fmt: skip


async def test_quotes_stream_as_events(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    broker.subscribe_quotes(["AAPL"])
    first = await next_event(events, is_quote("AAPL"))
    assert isinstance(first, QuoteEvent)
    assert (first.quote.bid, first.quote.ask) == (Decimal("199.95"), Decimal("200.05"))
    assert first.quote.ts.tzinfo is not None
    tws.set_quote("AAPL", 200.10, 200.20)
    moved = await next_event(events, lambda e: is_quote("AAPL")(e) and e.quote.bid > 200)
    assert isinstance(moved, QuoteEvent) and moved.quote.ask == Decimal("200.2")
    assert (await broker.quote("AAPL")).bid == Decimal("200.1")
    # one market data request for the symbol, however often it was asked for
    assert len(tws.requests_of(1)) == 1


async def test_quote_without_data_is_unavailable(broker: IBBroker) -> None:
    with pytest.raises(BrokerUnavailable, match="MSFT"):
        await broker.quote("MSFT")  # the fake has no MSFT market


async def test_delayed_data_is_refused_unless_allowed(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    tws.state.market_data_type = 3
    strict = await make_broker()
    with pytest.raises(BrokerUnavailable):
        await strict.quote("AAPL")
    lenient = await make_broker(client_id=18, allow_delayed_data=True)
    quote = await lenient.quote("AAPL")
    # a delayed quote is as old as IB's delay: the gateway will see it as stale
    assert (quote.bid, quote.ask) == (Decimal("199.95"), Decimal("200.05"))
    assert (datetime.now(UTC) - quote.ts).total_seconds() >= 15 * 60 - 1


async def test_delayed_ticks_are_refused_even_unannounced(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    tws.state.market_data_type = 3
    tws.state.withhold.add("58")  # no marketDataType message: only the tick types tell
    strict = await make_broker()
    with pytest.raises(BrokerUnavailable):
        await strict.quote("AAPL")


async def test_market_order_fills_with_a_fill_event(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    submitted = await broker.submit(market("m-1"))
    assert submitted.broker_order_id.isdigit()
    filled = await next_event(events, is_order("m-1", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert filled.fill.price == Decimal("200.05") and filled.fill.quantity == 10
    assert filled.fill.broker_order_id == submitted.broker_order_id
    assert filled.order.filled_quantity == 10 and filled.order.avg_fill_price == Decimal("200.05")
    # IB saw our id in orderRef, for this account
    placed = tws.order_by_ref("m-1")
    assert placed is not None and placed.order_id == int(submitted.broker_order_id)
    assert placed.account == broker.account_id
    order = await broker.get_order("m-1")
    assert order is not None and order.status == "filled"
    [position] = await broker.positions()
    assert (position.symbol, position.qty) == ("AAPL", 10)


async def test_sell_fills_at_the_bid_and_positions_are_signed(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    await broker.submit(market("s-1", side="sell", qty=3))
    filled = await next_event(events, is_order("s-1", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert filled.fill.price == Decimal("199.95") and filled.fill.side == "sell"
    [position] = await broker.positions()
    assert position.qty == -3


async def test_limit_order_rests_then_fills_when_the_market_comes(
    tws: FakeTWS, broker: IBBroker
) -> None:
    events = broker.events()
    resting = await broker.submit(limit("l-1", 199.00))
    assert resting.status == "accepted" and resting.limit_price == Decimal("199")
    assert [o.client_order_id for o in await broker.open_orders()] == ["l-1"]
    tws.set_quote("AAPL", 198.90, 199.00)
    filled = await next_event(events, is_order("l-1", "filled"))
    assert isinstance(filled, OrderEvent) and filled.fill is not None
    assert filled.fill.price == Decimal("199")
    assert await broker.open_orders() == []


@pytest.mark.parametrize("status_first", [False, True])
async def test_partial_fills_accumulate(tws: FakeTWS, broker: IBBroker, status_first: bool) -> None:
    tws.state.status_first = status_first  # IB's two reports of a fill, in either order
    events = broker.events()
    await broker.submit(limit("p-1", 150.0, qty=10))
    placed = tws.order_by_ref("p-1")
    assert placed is not None
    tws.fill(placed, 4, 150.0)
    tws.fill(placed, 6, 149.0)
    fills: list[Fill] = []
    statuses: list[str] = []

    def both_fills_seen(event: BrokerEvent) -> bool:
        if isinstance(event, OrderEvent) and event.order.client_order_id == "p-1":
            statuses.append(event.order.status.value)
            if event.fill is not None:
                fills.append(event.fill)
        return len(fills) == 2

    await next_event(events, both_fills_seen)
    assert [(f.quantity, f.price) for f in fills] == [(4, 150), (6, 149)]
    assert "partially_filled" in statuses and statuses[-1] == "filled"
    order = await broker.get_order("p-1")
    assert order is not None and order.status == "filled"
    assert order.filled_quantity == 10  # each fill counted once
    assert order.avg_fill_price == Decimal("149.4")


async def test_submit_is_idempotent_on_client_order_id(tws: FakeTWS, broker: IBBroker) -> None:
    first = await broker.submit(limit("dup-1", 190.0))
    again = await broker.submit(limit("dup-1", 190.0))
    assert again.broker_order_id == first.broker_order_id
    assert len(tws.requests_of(3)) == 1  # one placeOrder


async def test_order_ids_are_never_reused(broker: IBBroker) -> None:
    ids = [int((await broker.submit(limit(f"id-{n}", 190.0))).broker_order_id) for n in range(3)]
    assert ids == sorted(set(ids))


async def test_cancel_confirms_with_a_canceled_event(tws: FakeTWS, broker: IBBroker) -> None:
    events = broker.events()
    order = await broker.submit(limit("c-1", 190.0))
    await broker.cancel("c-1")
    canceled = await next_event(events, is_order("c-1", "canceled"))
    assert isinstance(canceled, OrderEvent)
    assert canceled.order.broker_order_id == order.broker_order_id
    assert await broker.open_orders() == []
    with pytest.raises(OrderRejected) as again:  # already final: nothing is sent
        await broker.cancel("c-1")
    assert again.value.code == "order_not_open"
    assert len(tws.requests_of(4)) == 1


async def test_cancel_of_an_unknown_order_is_not_found(broker: IBBroker) -> None:
    with pytest.raises(OrderNotFound):
        await broker.cancel("never-sent")
    assert await broker.get_order("never-sent") is None


async def test_a_rejected_order_raises_and_is_reported(tws: FakeTWS, broker: IBBroker) -> None:
    tws.state.reject_symbols["GME"] = (201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED")
    tws.set_quote("GME", 20.0, 20.1)
    events = broker.events()
    with pytest.raises(OrderRejected, match="NOT ACCEPTED") as caught:
        await broker.submit(market("r-1", symbol="GME"))
    assert caught.value.code == "201"
    rejected = await next_event(events, is_order("r-1", "rejected"))
    assert isinstance(rejected, OrderEvent) and "201" in (rejected.reason or "")
    # the same id again answers the rejected order, without a second placeOrder
    assert (await broker.submit(market("r-1", symbol="GME"))).status == "rejected"
    assert len(tws.requests_of(3)) == 1


async def test_an_unknown_symbol_is_rejected_before_any_order(
    tws: FakeTWS, broker: IBBroker
) -> None:
    tws.state.unknown_symbols.add("NOPE")
    with pytest.raises(OrderRejected, match="NOPE"):
        await broker.submit(market("u-1", symbol="NOPE"))
    assert tws.requests_of(3) == []


async def test_the_contract_and_order_fields_ib_receives(
    tws: FakeTWS, make_broker: MakeBroker
) -> None:
    broker = await make_broker(primary_exchange="NASDAQ")
    await broker.submit(OrderRequest(client_order_id="f-1", symbol="AAPL", side="sell",
                                     quantity=7, order_type="limit", limit_price=250.5,
                                     time_in_force="gtc"))  # fmt: skip
    [(client_id, fields)] = tws.requests_of(3)
    # placeOrder: id, contract (conId symbol secType .. exchange primaryExchange currency ..),
    # then action, quantity, type, limit, aux, tif, oca, account, openClose, origin, orderRef
    assert client_id == 17
    assert fields[2] == str(tws.state.con_id("AAPL"))  # qualified first
    assert (fields[3], fields[4], fields[9], fields[10], fields[11]) == (
        "AAPL", "STK", "SMART", "NASDAQ", "USD")  # fmt: skip
    assert (fields[16], fields[17], fields[18], fields[19], fields[21]) == (
        "SELL", "7.0", "LMT", "250.5", "GTC")  # fmt: skip
    assert (fields[23], fields[26]) == (broker.account_id, "f-1")
