"""Orders a strategy manages, over Alpaca's REST API (cassettes/alpaca/lifecycle_*.yaml):
replace keeps the gateway's client_order_id on Alpaca's new order, a refusal changes nothing,
a replaced chain is found again by a fresh adapter, cancel refusals say order_not_open, stop
and stop_limit orders, brackets and OTO with their legs under the gateway's ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from alpaca_helpers import WITH_QUERY, make_vcr, played

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import OrderChange, OrderRequest, OrderStatus, OrderType, TimeInForce
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.retrying import RetryingBroker, RetryPolicy
from tests.fakes.recorded_sleep import RecordedSleep

Build = Callable[..., AlpacaBroker]


def uid(n: int) -> str:
    return f"5b1f3a2c-7d4e-4f60-9a8b-0c1d2e3f{n:04x}"


def vcr() -> Any:
    """Bodies are matched too: a request whose body differs from the recording fails, so the
    assertions on ``sent`` hold for what the adapter really sent."""
    return make_vcr((*WITH_QUERY, "body"))


def sent(cassette: Any, index: int) -> dict[str, Any]:
    body = cassette.requests[index].body
    parsed: dict[str, Any] = json.loads(body.decode() if isinstance(body, bytes) else body)
    return parsed


async def test_replace_answers_the_new_alpaca_order_under_the_gateways_id(
    make_broker: Build,
) -> None:
    broker = make_broker()
    with vcr().use_cassette("lifecycle_replace.yaml") as cassette:
        moved = await broker.replace("sig-rest-1", OrderChange(limit_price="189.8"))
        # one look-up, one PATCH of the order Alpaca knows under our id
        assert played(cassette) == 2 and played(cassette, "PATCH", f"/v2/orders/{uid(0xA1)}") == 1
        assert sent(cassette, 1) == {"limit_price": 189.8}  # nothing filled: no qty sent
        assert moved.client_order_id == "sig-rest-1" and moved.broker_order_id == uid(0xA2)
        assert moved.limit_price == Decimal("189.8") and moved.quantity == 10
        assert moved.status is OrderStatus.NEW

        again = await broker.get_order("sig-rest-1")  # by the new id: one request
        assert played(cassette, "GET", f"/v2/orders/{uid(0xA2)}") == 1
        assert again is not None and again.client_order_id == "sig-rest-1"
        assert again.broker_order_id == uid(0xA2)

        grown = await broker.replace("sig-rest-1", OrderChange(quantity=12))
        assert sent(cassette, 4) == {"qty": 12}
        assert grown.client_order_id == "sig-rest-1" and grown.broker_order_id == uid(0xA3)
        assert grown.quantity == 12
    assert cassette.all_played


async def test_replacing_a_partly_filled_order_sends_what_remains(make_broker: Build) -> None:
    """Alpaca's replacing order trades its qty from zero: sending the remaining 6 (not 10)
    keeps the order at 10 in all; the view adds what the replaced order filled."""
    broker = make_broker()
    with vcr().use_cassette("lifecycle_replace_partial.yaml") as cassette:
        moved = await broker.replace("sig-rest-2", OrderChange(limit_price="189.7"))
        assert sent(cassette, 1) == {"qty": 6, "limit_price": 189.7}
        assert (moved.quantity, moved.filled_quantity) == (Decimal(10), Decimal(4))
        assert moved.avg_fill_price == Decimal("189.49") and moved.remaining_quantity == 6
        with pytest.raises(OrderRejected, match="quantity: Alpaca replaces whole shares"):
            await broker.replace("sig-rest-2", OrderChange(quantity="6.5"))
        with pytest.raises(OrderRejected, match="quantity: 3 is not above the 4 already filled"):
            await broker.replace("sig-rest-2", OrderChange(quantity=3))
    assert played(cassette, "PATCH") == 1 and cassette.all_played  # the refusals sent nothing


async def test_a_refused_replace_leaves_the_order_as_it_was(make_broker: Build) -> None:
    broker = make_broker()
    with vcr().use_cassette("lifecycle_replace_refused.yaml") as cassette:
        with pytest.raises(OrderRejected, match="isn't sent to exchange yet") as refused:
            await broker.replace("sig-rest-3", OrderChange(limit_price=190))
        assert refused.value.status == 422
        still = await broker.get_order("sig-rest-3")  # still looked up by our own id
        assert still is not None and still.broker_order_id == uid(0xC1)
        assert still.limit_price == Decimal("189.5")
        with pytest.raises(OrderNotFound):
            await broker.replace("sig-none", OrderChange(limit_price=190))
    assert cassette.all_played


async def test_a_fresh_adapter_finds_a_replaced_chain_from_alpacas_own_links(
    make_broker: Build,
) -> None:
    """A -(replaced_by)-> B -(replaced_by)-> C: after a restart, open_orders reports C under
    A's client_order_id (through ``replaces``), get_order follows ``replaced_by``, and the
    quantities add what A filled (2 @ 189.4) to C's (1 @ 189.7 of 8)."""
    with vcr().use_cassette("lifecycle_restart_chain.yaml") as cassette:
        (listed,) = await make_broker().open_orders()
        broker = make_broker()
        found = await broker.get_order("sig-rest-7")
        await broker.cancel("sig-rest-7")
    assert cassette.all_played
    for order in (listed, found):
        assert order is not None
        assert order.client_order_id == "sig-rest-7" and order.broker_order_id == uid(0xD3)
        assert (order.quantity, order.filled_quantity) == (Decimal(10), Decimal(3))
        assert order.avg_fill_price == Decimal("189.5")  # (2*189.4 + 1*189.7) / 3
        assert order.status is OrderStatus.PARTIALLY_FILLED
    assert played(cassette, "DELETE", f"/v2/orders/{uid(0xD3)}") == 1  # the live order


async def test_cancel_refusals_say_order_not_open(make_broker: Build) -> None:
    broker = make_broker()
    with vcr().use_cassette("lifecycle_cancel.yaml") as cassette:
        with pytest.raises(OrderRejected, match="not cancelable") as raced:
            await broker.cancel("sig-rest-4")  # final at Alpaca by the time DELETE came
        assert raced.value.code == "order_not_open"
        with pytest.raises(OrderRejected, match="filled") as final:
            await broker.cancel("sig-rest-5")  # known final: nothing sent
        assert final.value.code == "order_not_open"
    assert played(cassette, "DELETE") == 1 and cassette.all_played


async def test_stop_and_stop_limit_orders_are_sent_and_read_back(make_broker: Build) -> None:
    broker = make_broker()
    stop = OrderRequest(
        client_order_id="sig-stop-1",
        symbol="AAPL",
        side="sell",
        quantity=5,
        order_type="stop",
        stop_price=185,
    )
    stop_limit = OrderRequest(
        client_order_id="sig-stop-2",
        symbol="MSFT",
        side="buy",
        quantity=3,
        order_type="stop_limit",
        stop_price="405.5",
        limit_price=406,
        time_in_force="gtc",
    )
    with vcr().use_cassette("lifecycle_stop_orders.yaml") as cassette:
        placed_stop = await broker.submit(stop)
        placed_stop_limit = await broker.submit(stop_limit)
    assert played(cassette, "POST") == 2 and played(cassette) == 2  # one request each
    assert sent(cassette, 0)["type"] == "stop" and sent(cassette, 0)["stop_price"] == 185.0
    assert "limit_price" not in sent(cassette, 0)
    body = sent(cassette, 1)
    assert (body["type"], body["stop_price"], body["limit_price"]) == ("stop_limit", 405.5, 406.0)
    assert placed_stop.order_type is OrderType.STOP and placed_stop.stop_price == 185
    assert placed_stop.limit_price is None
    assert placed_stop_limit.order_type is OrderType.STOP_LIMIT
    assert placed_stop_limit.stop_price == Decimal("405.5")
    assert placed_stop_limit.limit_price == 406
    assert placed_stop_limit.time_in_force is TimeInForce.GTC


def leg(coid: str, **fields: Any) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side="sell", **fields)


async def test_bracket_and_oto_are_one_post_and_legs_take_the_gateways_ids(
    make_broker: Build,
) -> None:
    broker = make_broker()
    entry = OrderRequest(
        client_order_id="sig-br-1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        order_type="limit",
        limit_price="189.5",
        time_in_force="gtc",
    )
    stop_loss = leg(
        "sig-br-1-sl", quantity=10, order_type="stop", stop_price=180, time_in_force="gtc"
    )
    take_profit = leg(
        "sig-br-1-tp", quantity=10, order_type="limit", limit_price=200, time_in_force="gtc"
    )
    with vcr().use_cassette("lifecycle_bracket.yaml") as cassette:
        placed, sl, tp = await broker.submit_bracket(entry, stop_loss, take_profit)
        assert played(cassette) == 1
        body = sent(cassette, 0)
        assert body["order_class"] == "bracket" and body["client_order_id"] == "sig-br-1"
        assert body["stop_loss"] == {"stop_price": 180.0}
        assert body["take_profit"] == {"limit_price": 200.0}
        assert placed.client_order_id == "sig-br-1" and placed.broker_order_id == uid(0x101)
        # legs by their type, not their place in Alpaca's list (take profit comes first there)
        assert (sl.client_order_id, sl.broker_order_id) == ("sig-br-1-sl", uid(0x103))
        assert sl.order_type is OrderType.STOP and sl.stop_price == 180
        assert sl.status is OrderStatus.ACCEPTED  # "held" until the entry fills
        assert (tp.client_order_id, tp.broker_order_id) == ("sig-br-1-tp", uid(0x102))
        assert tp.limit_price == 200

        oto = await broker.submit_bracket(
            OrderRequest(client_order_id="sig-oto-1", symbol="AAPL", side="buy", quantity=5),
            leg(
                "sig-oto-1-sl",
                quantity=5,
                order_type="stop_limit",
                stop_price=180,
                limit_price="179.5",
            ),
            None,
        )
        assert sent(cassette, 1)["order_class"] == "oto"
        assert sent(cassette, 1)["stop_loss"] == {"stop_price": 180.0, "limit_price": 179.5}
        assert "take_profit" not in sent(cassette, 1)
        assert [o.client_order_id for o in oto] == ["sig-oto-1", "sig-oto-1-sl"]

        moved = await broker.replace("sig-br-1-sl", OrderChange(stop_price=182))
        assert played(cassette, "PATCH", f"/v2/orders/{uid(0x103)}") == 1
        assert sent(cassette, 3) == {"stop_price": 182.0}
        assert moved.client_order_id == "sig-br-1-sl" and moved.broker_order_id == uid(0x104)
        assert moved.stop_price == 182

        profit = await broker.get_order("sig-br-1-tp")
        assert profit is not None and profit.broker_order_id == uid(0x102)
        assert profit.status is OrderStatus.NEW
    assert cassette.all_played


async def test_bad_brackets_and_changes_are_refused_before_anything_is_sent(
    make_broker: Build,
) -> None:
    broker = make_broker()
    entry = OrderRequest(client_order_id="e", symbol="AAPL", side="buy", quantity=10)
    with vcr().use_cassette("lifecycle_bracket.yaml") as cassette:
        with pytest.raises(OrderRejected, match=r"stop_loss\.side: must be sell"):
            await broker.submit_bracket(
                entry,
                OrderRequest(
                    client_order_id="s",
                    symbol="AAPL",
                    side="buy",
                    quantity=10,
                    order_type="stop",
                    stop_price=1,
                ),
                None,
            )
        with pytest.raises(OrderRejected, match=r"take_profit\.quantity"):
            await broker.submit_bracket(
                entry, None, leg("t", quantity=5, order_type="limit", limit_price=2)
            )
        with pytest.raises(OrderRejected, match=r"stop_loss\.order_type"):
            await broker.submit_bracket(
                entry, leg("s", quantity=10, order_type="limit", limit_price=2), None
            )
        with pytest.raises(OrderRejected, match="stop_loss, take_profit"):
            await broker.submit_bracket(entry, None, None)
    assert played(cassette) == 0


async def test_a_replace_whose_answer_was_lost_is_not_sent_again(make_broker: Build) -> None:
    """Behind the retry layer a 5xx on PATCH is raised, never retried (it may have landed)."""
    from alpaca_fake_http import Answer, ScriptedTransport

    open_order = {
        "id": uid(0xA1),
        "client_order_id": "sig-rest-1",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "10",
        "filled_qty": "0",
        "type": "limit",
        "limit_price": "189.5",
        "status": "new",
        "time_in_force": "day",
    }
    transport = ScriptedTransport(
        {
            ("GET", "/v2/orders:by_client_order_id"): [Answer(body=open_order)],
            ("PATCH", f"/v2/orders/{uid(0xA1)}"): [Answer(status=504, body="<html>504</html>")],
        }
    )
    retrying = RetryingBroker(
        make_broker(transport=transport), RetryPolicy(), sleep=RecordedSleep()
    )
    with pytest.raises(BrokerUnavailable):
        await retrying.replace("sig-rest-1", OrderChange(limit_price=190))
    assert transport.count("PATCH") == 1


async def test_a_fresh_adapter_reads_a_bracket_back_under_the_gateways_ids(
    make_broker: Build,
) -> None:
    """After a restart Alpaca's legs carry Alpaca's client_order_ids: the gateway names the
    bracket it journaled and gets its legs back under its own ids, a replaced stop followed
    to its live order."""
    broker = make_broker()
    with vcr().use_cassette("lifecycle_adopt_bracket.yaml") as cassette:
        entry, sl, tp = await broker.adopt_bracket("sig-br-1", "sig-br-1-sl", "sig-br-1-tp")
        assert "nested=true" in cassette.requests[1].uri  # the legs were not nested at first
        assert entry.status is OrderStatus.FILLED and entry.client_order_id == "sig-br-1"
        assert (sl.client_order_id, sl.broker_order_id) == ("sig-br-1-sl", uid(0x104))
        assert sl.stop_price == 182 and sl.status is OrderStatus.NEW
        assert (tp.client_order_id, tp.broker_order_id) == ("sig-br-1-tp", uid(0x102))
        stop = await broker.get_order("sig-br-1-sl")
        assert stop is not None and stop.broker_order_id == uid(0x104)
    assert cassette.all_played


async def test_a_replace_whose_look_up_failed_is_tried_again(make_broker: Build) -> None:
    """Nothing was sent when the look-up before the PATCH failed: the retry layer may try
    the whole replace again, and the second attempt lands once."""
    from alpaca_fake_http import Answer, ScriptedTransport

    open_order = {
        "id": uid(0xA1),
        "client_order_id": "sig-rest-1",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "10",
        "filled_qty": "0",
        "type": "limit",
        "limit_price": "189.5",
        "status": "new",
        "time_in_force": "day",
    }
    moved = {**open_order, "id": uid(0xA2), "client_order_id": "x", "replaces": uid(0xA1)}
    transport = ScriptedTransport(
        {
            ("GET", "/v2/orders:by_client_order_id"): [
                Answer(status=503, body='{"message": "busy"}'),
                Answer(body=open_order),
            ],
            ("PATCH", f"/v2/orders/{uid(0xA1)}"): [Answer(body={**moved, "limit_price": "190"})],
        }
    )
    retrying = RetryingBroker(
        make_broker(transport=transport), RetryPolicy(), sleep=RecordedSleep()
    )
    placed = await retrying.replace("sig-rest-1", OrderChange(limit_price=190))
    assert placed.client_order_id == "sig-rest-1" and placed.limit_price == 190
    assert transport.count("PATCH") == 1 and transport.count("GET") == 2


async def test_while_a_replace_is_pending_the_list_holds_one_order_per_gateway_order(
    make_broker: Build,
) -> None:
    """Alpaca lists the old order (pending_replace) and the new one (pending_new): the gateway
    sees one order, the new one, linked without a further request."""
    with vcr().use_cassette("lifecycle_open_pending_replace.yaml") as cassette:
        (order,) = await make_broker().open_orders()
    assert played(cassette) == 1
    assert order.client_order_id == "sig-rest-9" and order.broker_order_id == uid(0x132)
    assert order.limit_price == Decimal("189.9")
    assert (order.quantity, order.filled_quantity) == (Decimal(10), Decimal(1))
