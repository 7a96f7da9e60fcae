"""The one retry layer (``brokers.retrying``) against a broker whose failures are scripted.

RecordedSleep go to a sleep that records them instead of sleeping, so the stated worst case (calls and
waits for one submit against a broker that keeps failing) is checked exactly, without a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.base import Broker, BrokerOrder, OrderRequest, OrderStatus
from brokers.errors import (
    AnswerUnknown,
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    NotSent,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from brokers.retrying import RetryingBroker, RetryPolicy
from tests.fakes.recorded_sleep import RecordedSleep
from tests.fakes.scripted_broker import LOST, OK, Action, ScriptedBroker

ORDER = OrderRequest(client_order_id="sig-1", symbol="AAPL", side="buy", quantity=10)
LOOKUPS_AND_SENDS = ("submit", "get_order")


def unavailable() -> BrokerUnavailable:
    return BrokerUnavailable("service unavailable", status=503)


def retrying(
    script: Mapping[str, Sequence[Action]] | None = None,
    *,
    otherwise: Action = OK,
    policy: RetryPolicy | None = None,
) -> tuple[RetryingBroker, ScriptedBroker, RecordedSleep]:
    inner = ScriptedBroker(script, otherwise=otherwise)
    waits = RecordedSleep()
    return RetryingBroker(inner, policy or RetryPolicy(), sleep=waits), inner, waits


def order_calls(inner: ScriptedBroker) -> list[str]:
    return [c for c in inner.calls if c in LOOKUPS_AND_SENDS]


# ---------------------------------------------------------------- the stated worst case


def test_default_policy_figures_are_the_documented_ones() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.initial_wait_s, policy.max_wait_s) == (4, 0.25, 2.0)
    assert (policy.max_rate_limit_wait_s, policy.call_timeout_s) == (10.0, 30.0)
    assert policy.max_total_wait_s() == pytest.approx(1.75)
    assert policy.max_total_wait_s(rate_limited=True) == pytest.approx(30.75)


async def test_worst_case_a_broker_that_keeps_failing_after_sending() -> None:
    broker, inner, waits = retrying(otherwise=unavailable())
    with pytest.raises(AnswerUnknown) as caught:
        await broker.submit(ORDER)
    # one send; every later attempt only looks, because no look-up could say it did not land
    assert inner.calls == ["submit", "get_order", "get_order", "get_order"]
    assert isinstance(caught.value.__cause__, BrokerUnavailable)
    assert len(waits.seconds) == 3 and waits.total <= 1.75
    for n, wait in enumerate(waits.seconds, start=1):
        assert 0 <= wait <= min(2.0, 0.25 * 2 ** (n - 1))


async def test_worst_case_a_broker_that_keeps_refusing_before_sending() -> None:
    broker, inner, waits = retrying(otherwise=NotSent("connection refused"))
    with pytest.raises(NotSent):  # certainly not placed: not "unknown"
        await broker.submit(ORDER)
    assert inner.calls == ["submit"] * 4
    assert len(waits.seconds) == 3 and waits.total <= 1.75


async def test_worst_case_a_broker_that_keeps_rate_limiting() -> None:
    broker, inner, waits = retrying(otherwise=RateLimited("slow down", retry_after_s=10.0))
    with pytest.raises(RateLimited):
        await broker.submit(ORDER)
    assert inner.calls == ["submit"] * 4  # a 429 did not land: no look-ups
    assert len(waits.seconds) == 3
    assert all(10.0 <= wait <= 10.25 for wait in waits.seconds)  # honoured, plus jitter
    assert waits.total <= 30.75


async def test_a_rate_limit_longer_than_allowed_is_not_waited_for() -> None:
    broker, inner, waits = retrying(otherwise=RateLimited("quota", retry_after_s=60.0))
    with pytest.raises(RateLimited) as caught:
        await broker.account()
    assert caught.value.retry_after_s == 60.0
    assert inner.calls == ["account"] and waits.seconds == []


async def test_fewer_attempts_fewer_calls() -> None:
    broker, inner, waits = retrying(otherwise=unavailable(), policy=RetryPolicy(attempts=2))
    with pytest.raises(AnswerUnknown):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order"] and len(waits.seconds) == 1


async def test_waits_are_jittered() -> None:
    firsts = set()
    for _ in range(20):
        broker, _inner, waits = retrying({"account": [unavailable()]})
        await broker.account()
        firsts.add(waits.seconds[0])
    assert len(firsts) > 1


# ---------------------------------------------------------------- look before sending again


async def test_a_lost_answer_is_looked_up_and_adopted_never_sent_twice() -> None:
    broker, inner, _ = retrying({"submit": [LOST]})
    order = await broker.submit(ORDER)
    assert order.broker_order_id == "b-sig-1"
    assert inner.calls == ["submit", "get_order"] and inner.placed == ["sig-1"]


async def test_a_failure_that_did_not_land_is_looked_up_then_sent_again() -> None:
    broker, inner, _ = retrying({"submit": [unavailable()]})
    order = await broker.submit(ORDER)
    assert order.status is OrderStatus.ACCEPTED
    assert inner.calls == ["submit", "get_order", "submit"] and inner.placed == ["sig-1"]


async def test_not_sent_and_rate_limited_are_sent_again_without_a_look_up() -> None:
    broker, inner, waits = retrying(
        {"submit": [NotSent("refused"), RateLimited("slow", retry_after_s=0.5)]}
    )
    await broker.submit(ORDER)
    assert inner.calls == ["submit", "submit", "submit"] and inner.placed == ["sig-1"]
    assert 0.5 <= waits.seconds[1] <= 0.75


async def test_a_failed_look_up_counts_as_an_attempt_and_keeps_looking() -> None:
    broker, inner, waits = retrying({"submit": [LOST], "get_order": [unavailable()]})
    order = await broker.submit(ORDER)
    assert order.client_order_id == "sig-1"
    assert inner.calls == ["submit", "get_order", "get_order"] and len(waits.seconds) == 2


async def test_lost_answer_then_look_ups_failing_until_the_end_is_answer_unknown() -> None:
    broker, inner, _ = retrying({"submit": [LOST]}, otherwise=unavailable())
    with pytest.raises(AnswerUnknown) as caught:
        await broker.submit(ORDER)
    assert "may have reached" in caught.value.message
    assert inner.placed == ["sig-1"] and inner.count("submit") == 1


async def test_a_definite_error_from_a_look_up_leaves_the_order_unknown() -> None:
    refused = OrderRejected("unauthorized.", status=401)
    broker, inner, _ = retrying({"submit": [unavailable()], "get_order": [refused]})
    with pytest.raises(AnswerUnknown) as caught:
        await broker.submit(ORDER)
    assert caught.value.__cause__ is refused  # not a rejection: nobody said no to the order
    assert inner.calls == ["submit", "get_order"]


async def test_a_rejection_after_a_settled_look_up_is_a_rejection() -> None:
    no = OrderRejected("insufficient buying power", status=403)
    broker, inner, _ = retrying({"submit": [unavailable(), no]})
    with pytest.raises(OrderRejected):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order", "submit"] and inner.placed == []


async def test_out_of_attempts_after_a_settled_look_up_reraises_the_last_error() -> None:
    # the 503 was settled by a look-up (not there); the failures after it never left
    script: dict[str, Sequence[Action]] = {"submit": [unavailable()], "get_order": [OK]}
    broker, inner, _ = retrying(script, otherwise=NotSent("link down"))
    with pytest.raises(NotSent):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order", "submit", "submit", "submit"]
    assert inner.placed == []


async def test_a_duplicate_answer_is_looked_up_and_adopted() -> None:
    broker, inner, _ = retrying()
    existing = await inner.submit(ORDER)  # an earlier life of this process placed it
    inner.calls.clear()
    assert await broker.submit(ORDER) == existing
    assert inner.calls == ["submit", "get_order"] and inner.placed == ["sig-1"]


async def test_a_duplicate_of_a_different_order_is_refused() -> None:
    broker, inner, _ = retrying()
    other = ORDER.model_copy(update={"quantity": 5})
    await inner.submit(other)
    inner.calls.clear()
    with pytest.raises(DuplicateOrder, match="already used"):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order"]


async def test_a_lost_answer_whose_look_up_finds_another_order_is_a_duplicate() -> None:
    inner = ScriptedBroker({"submit": [unavailable()]})

    async def someone_else_places_it(seconds: float) -> None:
        await inner.submit(ORDER.model_copy(update={"side": "sell"}))

    broker = RetryingBroker(inner, sleep=someone_else_places_it)
    with pytest.raises(DuplicateOrder):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "submit", "get_order"]  # ours failed, theirs landed


async def test_a_duplicate_whose_look_up_finds_nothing_is_unknown_and_never_resent() -> None:
    broker, inner, _ = retrying({"submit": [DuplicateOrder("client_order_id must be unique")]})
    with pytest.raises(AnswerUnknown, match="in use"):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order"]


async def test_after_a_duplicate_the_order_is_only_looked_up() -> None:
    dup = DuplicateOrder("client_order_id must be unique")
    broker, inner, _ = retrying({"submit": [dup]}, otherwise=unavailable())
    with pytest.raises(AnswerUnknown):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order", "get_order", "get_order", "get_order"]

    # a later look-up that finds nothing does not make it safe to send: the broker holds the id
    broker, inner, _ = retrying({"submit": [dup], "get_order": [unavailable()]})
    with pytest.raises(AnswerUnknown, match="in use"):
        await broker.submit(ORDER)
    assert inner.calls == ["submit", "get_order", "get_order"] and inner.placed == []


# ---------------------------------------------------------------- every other method


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("account", ()),
        ("positions", ()),
        ("open_orders", ()),
        ("get_order", ("sig-1",)),
        ("quote", ("AAPL",)),
        ("cancel_all", ()),
    ],
)
async def test_reads_and_cancel_all_are_retried_alike(method: str, args: tuple[str, ...]) -> None:
    broker, inner, waits = retrying({method: [unavailable(), NotSent("down")]})
    await getattr(broker, method)(*args)
    assert inner.calls == [method] * 3 and len(waits.seconds) == 2

    broker, inner, waits = retrying(otherwise=unavailable())
    with pytest.raises(BrokerUnavailable) as caught:
        await getattr(broker, method)(*args)
    assert not isinstance(caught.value, AnswerUnknown)  # only a submit can be unknown
    assert inner.calls == [method] * 4 and waits.total <= 1.75


async def test_cancel_is_retried_and_a_definite_answer_is_not() -> None:
    broker, inner, _ = retrying({"cancel": [unavailable()]})
    await inner.submit(ORDER)
    await broker.cancel("sig-1")
    assert inner.count("cancel") == 2 and inner.orders["sig-1"].status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        await broker.cancel("sig-unknown")
    assert inner.count("cancel") == 3


@pytest.mark.parametrize(
    "error",
    [
        OrderRejected("no", status=403),
        OrderNotFound("gone", status=404),
        DuplicateOrder("dup", status=422),
        BrokerError("unexpected ValueError"),
    ],
)
async def test_definite_errors_are_never_retried(error: BrokerError) -> None:
    broker, inner, waits = retrying(otherwise=error)
    with pytest.raises(type(error)):
        await broker.account()
    assert inner.calls == ["account"] and waits.seconds == []


async def test_a_call_that_hangs_is_abandoned_and_counts_as_maybe_landed() -> None:
    hung = asyncio.Event()

    class Hanging(ScriptedBroker):
        async def submit(self, order: OrderRequest) -> BrokerOrder:
            if not self.calls:
                self.calls.append("submit")
                await hung.wait()  # never set: a socket that never answers
            return await super().submit(order)

    inner = Hanging()
    broker = RetryingBroker(inner, RetryPolicy(call_timeout_s=0.05), sleep=RecordedSleep())
    async with asyncio.timeout(30):  # a safety net: without the call timeout this would hang
        order = await broker.submit(ORDER)
    assert order.client_order_id == "sig-1"
    assert inner.calls == ["submit", "get_order", "submit"]


# ---------------------------------------------------------------- shape


async def test_everything_else_is_passed_through() -> None:
    broker, inner, _ = retrying()
    assert isinstance(broker, Broker) and broker.inner is inner and broker.name == "scripted"
    assert not broker.connected
    await broker.connect()
    assert broker.connected and inner.connects == 1
    broker.subscribe_quotes(["AAPL"])
    assert inner.calls == ["subscribe_quotes"]
    assert [e async for e in broker.events()] == []
    await broker.close()
    assert not broker.connected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attempts", 0),
        ("initial_wait_s", -1.0),
        ("max_wait_s", float("nan")),
        ("max_rate_limit_wait_s", -0.1),
        ("call_timeout_s", 0.0),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------- never a second order

SUBMIT_STEPS = st.sampled_from(
    [OK, LOST, "503", "not_sent", "429", "rejected", "duplicate", "timeout"]
)
LOOKUP_STEPS = st.sampled_from([OK, "503", "not_sent", "429", "rejected"])


def _step(name: object) -> Action:
    if not isinstance(name, str):
        return name  # type: ignore[return-value]
    return {
        "503": unavailable(),
        "not_sent": NotSent("connection refused"),
        "429": RateLimited("slow down", retry_after_s=1.0),
        "rejected": OrderRejected("no", status=403),
        "duplicate": DuplicateOrder("client_order_id must be unique"),
        "timeout": BrokerUnavailable("read timed out"),
    }[name]


@settings(max_examples=300, deadline=None)
@given(
    submits=st.lists(SUBMIT_STEPS, max_size=6),
    lookups=st.lists(LOOKUP_STEPS, max_size=6),
    failing=st.sampled_from([OK, "503", "not_sent"]),
)
def test_never_a_second_order_and_a_plain_error_means_not_placed(
    submits: list[object], lookups: list[object], failing: object
) -> None:
    script = {"submit": [_step(s) for s in submits], "get_order": [_step(s) for s in lookups]}
    broker, inner, waits = retrying(script, otherwise=_step(failing))

    async def run() -> BrokerOrder | BaseException:
        try:
            return await broker.submit(ORDER)
        except BrokerError as exc:
            return exc

    outcome = asyncio.run(run())
    assert len(inner.placed) <= 1  # one client_order_id, one order at most
    assert inner.count("submit") <= 4 and inner.count("get_order") <= 4
    assert waits.total <= RetryPolicy().max_total_wait_s(rate_limited=True)
    if isinstance(outcome, BrokerOrder):
        assert inner.placed == ["sig-1"] and outcome == inner.orders["sig-1"]
    elif not isinstance(outcome, AnswerUnknown):
        # any other error promises the order is not at the broker
        assert inner.placed == [], (outcome, inner.calls)
