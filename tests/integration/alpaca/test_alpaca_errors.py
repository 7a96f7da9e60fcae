"""Error mapping of the Alpaca adapter, and the adapter behind the one retry layer.

The adapter makes one attempt per call (``make_broker``); retries, and the look-up before a
submit is sent again, are ``RetryingBroker``'s (``make_retrying``, waits recorded instead of
slept). Cassettes where Alpaca's answer can be written down; the scripted transport where it
cannot (a timeout, a refused connection, a reset time relative to now). POSTs are counted every
time: one signal must never become two orders.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests
from alpaca_fake_http import Answer, ScriptedTransport
from alpaca_helpers import make_vcr, played
from urllib3.exceptions import MaxRetryError, NewConnectionError

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import OrderRequest, OrderStatus
from brokers.errors import (
    AnswerUnknown,
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    NotSent,
    OrderRejected,
    RateLimited,
)
from brokers.retrying import RetryingBroker, RetryPolicy
from tests.fakes.alpaca_streams import order_json
from tests.fakes.recorded_sleep import RecordedSleep

Build = Callable[..., AlpacaBroker]
Retrying = Callable[..., RetryingBroker]
ORDER = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=1)
POSTS = ("POST", "/v2/orders")
LOOKUP = ("GET", "/v2/orders:by_client_order_id")
LANDED = order_json(
    "0d7c4e1a-2f3b-4c5d-9e8f-7a6b5c4d3e2f", "sig-1", "AAPL", "1", "buy", status="accepted"
)
NOT_FOUND = Answer(404, {"code": 40410000, "message": "order not found for sig-1"})
BUSY = Answer(503, {"code": 50300000, "message": "service unavailable"})
ACCOUNT = {"equity": "1000", "cash": "1000", "buying_power": "2000", "last_equity": "990"}


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: the request was never written."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/v2/orders", reason))  # type: ignore[arg-type]


# ---------------------------------------------------------------- mapping (cassettes)


async def test_401_without_code_is_rejected_with_the_brokers_message(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_401_account.yaml") as cassette:
        with pytest.raises(OrderRejected) as caught:
            await make_broker().account()
    assert caught.value.status == 401 and caught.value.code is None
    assert caught.value.message == "unauthorized."
    assert played(cassette) == 1


async def test_401_is_not_retried(make_retrying: Retrying, sleep: RecordedSleep) -> None:
    with make_vcr().use_cassette("error_401_account.yaml") as cassette:
        with pytest.raises(OrderRejected):
            await make_retrying().account()
    assert played(cassette) == 1 and sleep.seconds == []


async def test_non_json_5xx_is_unavailable_once_then_retried_by_the_layer(
    make_broker: Build, make_retrying: Retrying
) -> None:
    with make_vcr().use_cassette("error_502_html_then_account.yaml") as cassette:
        with pytest.raises(BrokerUnavailable) as caught:
            await make_broker().account()
    assert caught.value.status == 502 and "502 Bad Gateway" in caught.value.message
    assert played(cassette) == 1  # the adapter never retries
    with make_vcr().use_cassette("error_502_html_then_account.yaml") as cassette:
        account = await make_retrying().account()
    assert account.equity > 0 and played(cassette) == 2


async def test_403_buying_power_is_rejected_without_lookup(make_retrying: Retrying) -> None:
    with make_vcr().use_cassette("error_403_buying_power.yaml") as cassette:
        with pytest.raises(OrderRejected) as caught:
            await make_retrying().submit(ORDER)
    assert caught.value.message == "insufficient buying power"
    assert (caught.value.code, caught.value.status) == ("40310000", 403)
    assert played(cassette, "POST") == 1 and played(cassette) == 1


async def test_422_invalid_order_is_rejected(make_retrying: Retrying) -> None:
    with make_vcr().use_cassette("error_422_asset_not_found.yaml") as cassette:
        with pytest.raises(OrderRejected, match="not tradable") as caught:
            await make_retrying().submit(ORDER)
    assert not isinstance(caught.value, DuplicateOrder) and caught.value.status == 422
    assert played(cassette) == 1


async def test_422_duplicate_client_order_id_is_a_duplicate_then_adopted(
    make_broker: Build, make_retrying: Retrying
) -> None:
    with make_vcr().use_cassette("error_422_duplicate_adopt.yaml") as cassette:
        with pytest.raises(DuplicateOrder):
            await make_broker().submit(ORDER)
    assert played(cassette) == 1  # the adapter translates; it does not look up
    with make_vcr().use_cassette("error_422_duplicate_adopt.yaml") as cassette:
        order = await make_retrying().submit(ORDER)
    assert order.broker_order_id == "0d7c4e1a-2f3b-4c5d-9e8f-7a6b5c4d3e2f"
    assert played(cassette, "POST") == 1 and played(cassette, "GET") == 1


async def test_422_duplicate_of_a_different_order_is_not_adopted(make_retrying: Retrying) -> None:
    other = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=5)
    with make_vcr().use_cassette("error_422_duplicate_adopt.yaml") as cassette:
        with pytest.raises(DuplicateOrder, match="already used"):
            await make_retrying().submit(other)
    assert played(cassette, "POST") == 1


async def test_429_is_ours_to_retry_not_alpaca_pys(
    make_broker: Build, make_retrying: Retrying, sleep: RecordedSleep
) -> None:
    with make_vcr().use_cassette("error_429_then_account.yaml") as cassette:
        with pytest.raises(RateLimited) as caught:
            await make_broker().account()
    # alpaca-py's own retry would have slept 3 s and replayed the 200
    assert played(cassette) == 1
    assert caught.value.status == 429 and caught.value.retry_after_s == 0.0  # reset has passed
    with make_vcr().use_cassette("error_429_then_account.yaml") as cassette:
        account = await make_retrying().account()
    assert account.equity > 0 and played(cassette) == 2 and len(sleep.seconds) == 1


async def test_500_on_submit_looks_up_then_posts_again(make_retrying: Retrying) -> None:
    with make_vcr().use_cassette("error_500_then_submit.yaml") as cassette:
        order = await make_retrying().submit(ORDER)
    assert order.client_order_id == "sig-1"
    # the look-up said "not there", so the second POST cannot make a second order
    assert played(cassette, "POST") == 2 and played(cassette, "GET") == 1


async def test_504_on_submit_finds_the_landed_order_no_second_post(
    make_retrying: Retrying,
) -> None:
    with make_vcr().use_cassette("error_504_submit_landed.yaml") as cassette:
        order = await make_retrying().submit(ORDER)
    assert order.status is OrderStatus.NEW  # pending_new
    assert played(cassette, "POST") == 1 and played(cassette, "GET") == 1


async def test_cancel_all_retried_after_503(make_retrying: Retrying) -> None:
    with make_vcr().use_cassette("error_503_cancel_all_then_ok.yaml") as cassette:
        report = await make_retrying().cancel_all()
    assert report.cancelled == ["61e69015-8549-4bfd-b9c3-01e75843f47d"]
    assert played(cassette, "DELETE") == 2


# ---------------------------------------------------------------- one signal, Alpaca down


async def test_one_submit_against_an_alpaca_answering_503_forever(
    make_retrying: Retrying, sleep: RecordedSleep
) -> None:
    # issue 14: the engine's retries around the adapter's made 16 POSTs and 19 GETs here
    transport = ScriptedTransport({POSTS: [BUSY] * 10, LOOKUP: [NOT_FOUND] * 10})
    with pytest.raises(AnswerUnknown):  # the last 503 was never settled by a look-up
        await make_retrying(transport=transport).submit(ORDER)
    assert (transport.count("POST"), transport.count("GET")) == (4, 3)
    assert transport.calls == [POSTS, LOOKUP, POSTS, LOOKUP, POSTS, LOOKUP, POSTS]
    assert len(sleep.seconds) == 3 and sleep.total <= 1.75


async def test_one_submit_when_the_look_ups_fail_too(
    make_retrying: Retrying, sleep: RecordedSleep
) -> None:
    transport = ScriptedTransport({POSTS: [BUSY] * 10, LOOKUP: [BUSY] * 10})
    with pytest.raises(AnswerUnknown):
        await make_retrying(transport=transport).submit(ORDER)
    assert transport.calls == [POSTS, LOOKUP, LOOKUP, LOOKUP]
    assert sleep.total <= 1.75


# ---------------------------------------------------------------- lost answers (transport)


async def test_lost_answer_is_looked_up_and_not_posted_again(make_retrying: Retrying) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ReadTimeout("read timed out")],
            LOOKUP: [Answer(200, LANDED)],
        }
    )
    order = await make_retrying(transport=transport).submit(ORDER)
    assert order.broker_order_id == LANDED["id"]
    assert transport.count("POST") == 1 and transport.calls == [POSTS, LOOKUP]


async def test_connection_reset_may_have_landed_so_it_is_looked_up(
    make_broker: Build, make_retrying: Retrying
) -> None:
    reset = requests.ConnectionError("connection reset by peer")
    transport = ScriptedTransport({POSTS: [reset]})
    with pytest.raises(BrokerUnavailable) as caught:
        await make_broker(transport=transport).submit(ORDER)
    assert not isinstance(caught.value, NotSent)
    transport = ScriptedTransport({POSTS: [reset, Answer(200, LANDED)], LOOKUP: [NOT_FOUND]})
    order = await make_retrying(transport=transport).submit(ORDER)
    assert order.client_order_id == "sig-1"
    assert transport.calls == [POSTS, LOOKUP, POSTS]


async def test_a_refused_connection_is_not_sent_and_posted_again_without_a_look_up(
    make_broker: Build, make_retrying: Retrying
) -> None:
    for error in (refused(), requests.ConnectTimeout("connect timed out")):
        with pytest.raises(NotSent):
            await make_broker(transport=ScriptedTransport({POSTS: [error]})).submit(ORDER)
    transport = ScriptedTransport({POSTS: [refused(), Answer(200, LANDED)]})
    order = await make_retrying(transport=transport).submit(ORDER)
    assert order.client_order_id == "sig-1" and transport.calls == [POSTS, POSTS]


async def test_nothing_listening_is_not_sent(make_broker: Build) -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    broker = make_broker(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(NotSent, match=r"Connection refused"):
        await broker.submit(ORDER)


async def test_unreadable_success_is_treated_as_a_lost_answer(
    make_broker: Build, make_retrying: Retrying
) -> None:
    for body in ("<html>proxy says hi</html>", {"id": "x"}):  # not JSON; JSON, not an order
        transport = ScriptedTransport({POSTS: [Answer(200, body)]})
        with pytest.raises(BrokerUnavailable, match="unreadable"):
            await make_broker(transport=transport).submit(ORDER)
    transport = ScriptedTransport(
        {
            POSTS: [Answer(200, "<html>proxy says hi</html>")],
            LOOKUP: [Answer(200, LANDED)],
        }
    )
    order = await make_retrying(transport=transport).submit(ORDER)
    assert order.broker_order_id == LANDED["id"] and transport.count("POST") == 1


async def test_out_of_attempts_after_a_lost_answer_is_unknown_not_failed(
    make_retrying: Retrying,
) -> None:
    transport = ScriptedTransport({POSTS: [requests.ReadTimeout("read timed out")]})
    with pytest.raises(AnswerUnknown) as caught:
        await make_retrying(RetryPolicy(attempts=1), transport=transport).submit(ORDER)
    assert isinstance(caught.value.__cause__, BrokerUnavailable)
    assert transport.calls == [POSTS]


async def test_every_attempt_lost_posts_once_per_clean_lookup(make_retrying: Retrying) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ConnectionError("connection reset by peer")] * 3,
            LOOKUP: [NOT_FOUND] * 3,
        }
    )
    with pytest.raises(AnswerUnknown):
        await make_retrying(RetryPolicy(attempts=3), transport=transport).submit(ORDER)
    # each POST after the first followed a look-up that found nothing
    assert transport.calls == [POSTS, LOOKUP, POSTS, LOOKUP, POSTS]


async def test_unexpected_vendor_exception_never_leaks(make_retrying: Retrying) -> None:
    transport = ScriptedTransport({("GET", "/v2/account"): [RuntimeError("urllib3 exploded")]})
    with pytest.raises(BrokerError) as caught:
        await make_retrying(transport=transport).account()
    assert type(caught.value) is BrokerError and "urllib3 exploded" in caught.value.message
    assert transport.count("GET") == 1  # not transient: not retried


# ---------------------------------------------------------------- rate limits and the loop


def rate_limited(reset_in_s: float) -> Answer:
    return Answer(
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
        {"X-Ratelimit-Reset": str(int(time.time() + reset_in_s)), "X-Ratelimit-Remaining": "0"},
    )


async def test_rate_limit_reset_header_is_honoured(
    make_retrying: Retrying, sleep: RecordedSleep
) -> None:
    transport = ScriptedTransport(
        {("GET", "/v2/account"): [rate_limited(30), Answer(200, ACCOUNT)]}
    )
    policy = RetryPolicy(max_rate_limit_wait_s=60)
    account = await make_retrying(policy, transport=transport).account()
    assert account.day_start_equity == 990
    [wait] = sleep.seconds  # until the reset (epoch seconds, whole), plus jitter
    assert 25 <= wait <= 31 + policy.initial_wait_s


async def test_rate_limit_reset_too_far_goes_to_the_caller(
    make_retrying: Retrying, sleep: RecordedSleep
) -> None:
    transport = ScriptedTransport({("GET", "/v2/account"): [rate_limited(120)]})
    with pytest.raises(RateLimited) as caught:
        await make_retrying(RetryPolicy(max_rate_limit_wait_s=5), transport=transport).account()
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 100
    assert transport.count("GET") == 1 and sleep.seconds == []


async def test_the_event_loop_runs_while_a_call_waits_for_its_answer(make_broker: Build) -> None:
    # The answers are held in the worker threads until this coroutine opens the gates: were a
    # call to block the event loop, nothing here could run, and the gates would stay shut.
    gate = threading.Event()
    transport = ScriptedTransport(
        {
            ("GET", "/v2/account"): [Answer(200, ACCOUNT, gate=gate)],
            POSTS: [Answer(200, LANDED, gate=gate)],
        }
    )
    broker = make_broker(transport=transport)
    calls = asyncio.gather(broker.account(), broker.submit(ORDER))
    async with asyncio.timeout(30):
        while len(transport.calls) < 2:  # noqa: ASYNC110 (the requests run in other threads)
            await asyncio.sleep(0.01)
    assert not calls.done()
    gate.set()
    account, order = await calls
    assert account.equity == 1000 and order.client_order_id == "sig-1"
