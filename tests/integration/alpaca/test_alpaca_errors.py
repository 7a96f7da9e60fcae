"""Error mapping, retries and idempotency of the Alpaca adapter, and a loop that never blocks.

Cassettes where Alpaca's answer can be written down; the scripted transport where it cannot (a
timeout, a slow answer, a reset time relative to now). POSTs are counted every time: one signal
must never become two orders.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import requests
from alpaca_fake_http import Answer, ScriptedTransport
from alpaca_helpers import make_vcr, played

from brokers.alpaca.broker import AlpacaBroker
from brokers.base import OrderRequest, OrderStatus
from brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    OrderRejected,
    RateLimited,
)
from tests.fakes.alpaca_streams import order_json

Build = Callable[..., AlpacaBroker]
ORDER = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=1)
POSTS = ("POST", "/v2/orders")
LOOKUP = ("GET", "/v2/orders:by_client_order_id")
LANDED = order_json(
    "0d7c4e1a-2f3b-4c5d-9e8f-7a6b5c4d3e2f", "sig-1", "AAPL", "1", "buy", status="accepted"
)
NOT_FOUND = Answer(404, {"code": 40410000, "message": "order not found for sig-1"})
ACCOUNT = {"equity": "1000", "cash": "1000", "buying_power": "2000", "last_equity": "990"}
DEADLINE_S = 30.0  # a safety deadline: a passing run waits on events, never this long


# ---------------------------------------------------------------- mapping (cassettes)


async def test_401_without_code_is_rejected_with_the_brokers_message(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_401_account.yaml") as cassette:
        with pytest.raises(OrderRejected) as caught:
            await make_broker().account()
    assert caught.value.status == 401 and caught.value.code is None
    assert caught.value.message == "unauthorized."
    assert played(cassette) == 1  # not transient: no retry


async def test_non_json_5xx_is_unavailable_then_retried(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_502_html_then_account.yaml") as cassette:
        account = await make_broker().account()
    assert account.equity > 0 and played(cassette) == 2
    with make_vcr().use_cassette("error_502_html_then_account.yaml"):
        with pytest.raises(BrokerUnavailable) as caught:
            await make_broker(retry_attempts=1).account()
    assert caught.value.status == 502 and "502 Bad Gateway" in caught.value.message


async def test_403_buying_power_is_rejected_without_lookup(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_403_buying_power.yaml") as cassette:
        with pytest.raises(OrderRejected) as caught:
            await make_broker().submit(ORDER)
    assert caught.value.message == "insufficient buying power"
    assert (caught.value.code, caught.value.status) == ("40310000", 403)
    assert played(cassette, "POST") == 1 and played(cassette) == 1


async def test_422_invalid_order_is_rejected(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_422_asset_not_found.yaml") as cassette:
        with pytest.raises(OrderRejected, match="not tradable") as caught:
            await make_broker().submit(ORDER)
    assert not isinstance(caught.value, DuplicateOrder) and caught.value.status == 422
    assert played(cassette) == 1


async def test_422_duplicate_client_order_id_adopts_the_landed_order(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_422_duplicate_adopt.yaml") as cassette:
        order = await make_broker().submit(ORDER)
    assert order.broker_order_id == "0d7c4e1a-2f3b-4c5d-9e8f-7a6b5c4d3e2f"
    assert played(cassette, "POST") == 1 and played(cassette, "GET") == 1


async def test_422_duplicate_of_a_different_order_is_not_adopted(make_broker: Build) -> None:
    other = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=5)
    with make_vcr().use_cassette("error_422_duplicate_adopt.yaml") as cassette:
        with pytest.raises(DuplicateOrder, match="already used"):
            await make_broker().submit(other)
    assert played(cassette, "POST") == 1


async def test_429_is_retried_by_us_not_by_alpaca_py(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_429_then_account.yaml") as cassette:
        account = await make_broker().account()
    assert account.equity > 0 and played(cassette) == 2
    with make_vcr().use_cassette("error_429_then_account.yaml") as cassette:
        with pytest.raises(RateLimited) as caught:
            await make_broker(retry_attempts=1).account()
    # alpaca-py's own retry would have slept 3 s and replayed the 200: one request only
    assert played(cassette) == 1
    assert caught.value.status == 429 and caught.value.retry_after_s == 0.0  # reset has passed


async def test_500_on_submit_looks_up_then_posts_again(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_500_then_submit.yaml") as cassette:
        order = await make_broker().submit(ORDER)
    assert order.client_order_id == "sig-1"
    # the look-up said "not there", so the second POST cannot make a second order
    assert played(cassette, "POST") == 2 and played(cassette, "GET") == 1


async def test_504_on_submit_finds_the_landed_order_no_second_post(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_504_submit_landed.yaml") as cassette:
        order = await make_broker().submit(ORDER)
    assert order.status is OrderStatus.NEW  # pending_new
    assert played(cassette, "POST") == 1 and played(cassette, "GET") == 1


async def test_cancel_all_retried_after_503(make_broker: Build) -> None:
    with make_vcr().use_cassette("error_503_cancel_all_then_ok.yaml") as cassette:
        report = await make_broker().cancel_all()
    assert report.cancelled == ["61e69015-8549-4bfd-b9c3-01e75843f47d"]
    assert played(cassette, "DELETE") == 2


# ---------------------------------------------------------------- lost answers (transport)


async def test_lost_answer_is_looked_up_and_not_posted_again(make_broker: Build) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ReadTimeout("read timed out")],
            LOOKUP: [Answer(200, LANDED)],
        }
    )
    order = await make_broker(transport=transport).submit(ORDER)
    assert order.broker_order_id == LANDED["id"]
    assert transport.count("POST") == 1 and transport.calls == [POSTS, LOOKUP]


async def test_connection_reset_before_landing_posts_once_more(make_broker: Build) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ConnectionError("connection reset by peer"), Answer(200, LANDED)],
            LOOKUP: [NOT_FOUND],
        }
    )
    order = await make_broker(transport=transport).submit(ORDER)
    assert order.client_order_id == "sig-1"
    assert transport.calls == [POSTS, LOOKUP, POSTS]


async def test_unreadable_success_is_treated_as_a_lost_answer(make_broker: Build) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [Answer(200, "<html>proxy says hi</html>")],
            LOOKUP: [Answer(200, LANDED)],
        }
    )
    order = await make_broker(transport=transport).submit(ORDER)
    assert order.broker_order_id == LANDED["id"] and transport.count("POST") == 1


async def test_out_of_attempts_after_lost_answer_still_reports_a_landed_order(
    make_broker: Build,
) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ReadTimeout("read timed out")],
            LOOKUP: [Answer(200, LANDED)],
        }
    )
    order = await make_broker(transport=transport, retry_attempts=1).submit(ORDER)
    assert order.broker_order_id == LANDED["id"] and transport.count("POST") == 1


async def test_every_attempt_lost_raises_unavailable_with_one_post_per_clean_lookup(
    make_broker: Build,
) -> None:
    transport = ScriptedTransport(
        {
            POSTS: [requests.ConnectionError("down")] * 3,
            LOOKUP: [NOT_FOUND] * 3,
        }
    )
    with pytest.raises(BrokerUnavailable):
        await make_broker(transport=transport, retry_attempts=3).submit(ORDER)
    # each POST after the first followed a look-up that found nothing
    assert transport.calls == [POSTS, LOOKUP, POSTS, LOOKUP, POSTS, LOOKUP]


async def test_unexpected_vendor_exception_never_leaks(make_broker: Build) -> None:
    transport = ScriptedTransport({("GET", "/v2/account"): [RuntimeError("urllib3 exploded")]})
    with pytest.raises(BrokerError) as caught:
        await make_broker(transport=transport).account()
    assert type(caught.value) is BrokerError and "urllib3 exploded" in caught.value.message


# ---------------------------------------------------------------- rate limits and the loop


async def test_rate_limit_reset_header_is_honoured(make_broker: Build) -> None:
    reset = int(time.time()) + 2  # epoch seconds, as Alpaca sends it
    transport = ScriptedTransport(
        {
            ("GET", "/v2/account"): [
                Answer(
                    429,
                    {"code": 42910000, "message": "rate limit exceeded"},
                    {"X-Ratelimit-Reset": str(reset), "X-Ratelimit-Remaining": "0"},
                ),
                Answer(200, ACCOUNT),
            ]
        }
    )
    account = await asyncio.wait_for(make_broker(transport=transport).account(), DEADLINE_S)
    assert account.day_start_equity == 990
    # Asked again only once the window had reset (a slow machine only makes this later).
    assert time.time() >= reset - 0.05


async def test_rate_limit_reset_too_far_goes_to_the_caller(make_broker: Build) -> None:
    transport = ScriptedTransport(
        {
            ("GET", "/v2/account"): [
                Answer(
                    429,
                    {"code": 42910000, "message": "rate limit exceeded"},
                    {"X-Ratelimit-Reset": str(int(time.time()) + 120)},
                ),
            ]
        }
    )
    with pytest.raises(RateLimited) as caught:
        await make_broker(transport=transport, max_rate_limit_wait_s=5).account()
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 100
    assert transport.count("GET") == 1


async def test_event_loop_keeps_running_during_slow_and_rate_limited_calls(
    make_broker: Build,
) -> None:
    # Every answer is held until the test releases it: the test can only go on polling (and
    # release them) if the adapter's blocking calls run off the event loop.
    first_account, second_account, post = threading.Event(), threading.Event(), threading.Event()
    transport = ScriptedTransport(
        {
            ("GET", "/v2/account"): [
                Answer(
                    429, {"code": 42910000, "message": "rate limit exceeded"}, gate=first_account
                ),
                Answer(200, ACCOUNT, gate=second_account),
            ],
            POSTS: [Answer(200, LANDED, gate=post)],
        }
    )
    broker = make_broker(transport=transport, retry_initial_wait_s=0.2, retry_max_wait_s=0.3)
    account = asyncio.create_task(broker.account(), name="test-account")
    submit = asyncio.create_task(broker.submit(ORDER), name="test-submit")

    await _until(lambda: transport.count("GET") == 1 and transport.count("POST") == 1)
    first_account.set()  # 429: the adapter backs off and asks again, the POST still held
    await _until(lambda: transport.count("GET") == 2)
    assert not submit.done()
    post.set()
    order = await asyncio.wait_for(submit, DEADLINE_S)  # while the account call is still held
    assert not account.done()
    second_account.set()
    assert (await asyncio.wait_for(account, DEADLINE_S)).equity == 1000
    assert order.client_order_id == "sig-1"
    assert transport.count("POST") == 1


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
