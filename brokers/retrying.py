"""The one retry layer for broker calls: ``RetryingBroker`` wraps any ``Broker``.

Adapters make one attempt per call and translate what went wrong (``brokers.errors``); this
layer decides whether to try again. Nothing above it retries a broker call, nothing below it does.

Rules
    - Transient errors (``BrokerUnavailable`` and its subclasses) are retried with tenacity:
      at most ``attempts`` attempts, waits jittered and exponential; a ``RateLimited`` with a
      ``retry_after_s`` is waited for (plus jitter) when that is at most
      ``max_rate_limit_wait_s``, and not waited for at all when it is longer (raised at once).
    - Definite errors (``OrderRejected``, ``OrderNotFound``, ``DuplicateOrder``, a plain
      ``BrokerError``) are never retried.
    - Every call to the inner broker is bounded by ``call_timeout_s``; a call that overruns is
      abandoned and counts as a ``BrokerUnavailable`` (for a submit: it may have landed).
    - Reads (account, positions, open_orders, get_order, quote), cancel and cancel_all are
      retried alike. connect, close, events and subscribe_quotes are passed through.

submit: never a second order for one client_order_id
    A failure that may have landed (a ``BrokerUnavailable`` that is neither ``RateLimited`` nor
    ``NotSent``) makes the next attempt look first: ``inner.get_order(client_order_id)``.
    Found and the same order (symbol, side, quantity): adopted and returned. Found but another
    order: ``DuplicateOrder``. Not found: sent again. A look-up that fails is a failed attempt,
    and the order stays "maybe landed". A ``DuplicateOrder`` answer is looked up the same way
    and adopted; after it the order is never sent again (the broker holds the id).

    What ``submit`` raises:
      BrokerOrder returned   placed, or adopted after a look-up found it
      OrderRejected          the broker said no (and no earlier attempt can have landed)
      DuplicateOrder         the client_order_id belongs to a different order at the broker
      AnswerUnknown          it may have landed and no look-up settled it: the attempts ran
                             out, or a long rate limit or a definite error stopped the look-ups,
                             or the broker said the id is in use but its look-up found nothing;
                             the cause is chained (``__cause__``)
      BrokerUnavailable, NotSent, RateLimited
                             the last transient error, once the attempts ran out (or a rate
                             limit was too long), when the order certainly did not land

Worst case (``A`` = attempts, ``T`` = the longest one call may take: ``call_timeout_s``, or the
adapter's own limit when lower; Alpaca ends a request after ``timeout_s`` of silence, 10 s)
    One submit against a broker that keeps failing (every call a transient error) makes exactly
    ``A`` calls: one submit and ``A - 1`` get_order when the first failure may have landed (5xx,
    timeout, lost connection; the look-ups fail too, so nothing is sent again), ``A`` submits and
    no get_order when every failure says it never left (``NotSent``, 429). Whatever the broker
    answers, one submit makes at most ``A`` submit calls and ``A`` get_order calls (``2A`` calls,
    so at most ``2A * T`` plus the waits).
    Waits, after failure n = 1 .. A-1: at most ``min(max_wait_s, initial_wait_s * 2**(n-1))``
    (tenacity's ``wait_random_exponential``: uniform from 0 to that), or after a 429 at most
    ``max_rate_limit_wait_s + initial_wait_s``.
    Total time for one submit against a broker that keeps failing: at most ``A * T`` plus the
    waits. With the defaults (A=4, 0.25 s, 2 s, 10 s, call_timeout_s=30 s):
      submit calls 1 (or 4 when nothing was sent), get_order calls 3 (or 0)
      waits at most 0.25 + 0.5 + 1.0 = 1.75 s; at most 3 * 10.25 = 30.75 s when rate-limited
      time at most 4 * 30 + 1.75 = 121.75 s; on Alpaca (timeout_s=10) 4 * 10 + 1.75 = 41.75 s,
      and about 1.75 s plus four round trips when it answers 503 at once.
    The same bounds hold for every other method (without the look-ups).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from brokers.base import (
    Account,
    Broker,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    Fill,
    OrderChange,
    OrderRequest,
    Position,
    Quote,
)
from brokers.errors import (
    AnswerUnknown,
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    OrderRejected,
)
from brokers.retry_policy import RetryPolicy, RetryWait, may_have_landed

# RetryPolicy is this layer's (its own module keeps this one short): imported from here too.
__all__ = ["RetryPolicy", "RetryingBroker", "may_have_landed", "submit_bracket"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]


class _Submission:
    """One order on its way through the attempts, and what is known about whether it landed."""

    def __init__(self, broker: RetryingBroker, order: OrderRequest):
        self._broker = broker
        self.order = order
        self.maybe_landed = False  # a failure may have placed it; no look-up has said otherwise
        self.held_by_broker = False  # the broker said the id is in use: never send it again

    async def attempt(self) -> BrokerOrder:
        coid = self.order.client_order_id
        if self.maybe_landed or self.held_by_broker:
            # A failed look-up raises here: a failed attempt, and the order stays maybe landed.
            existing = await self._broker.timed("get_order", lambda: self._inner.get_order(coid))
            if existing is not None:
                return self._adopt(existing)
            if self.held_by_broker:
                raise AnswerUnknown(
                    f"submit {coid}: the broker says this client_order_id is in use, "
                    "but its look-up does not find it"
                )
            self.maybe_landed = False  # it did not land: sending again is safe
        try:
            return await self._broker.timed("submit", lambda: self._inner.submit(self.order))
        except DuplicateOrder:
            self.maybe_landed = self.held_by_broker = True
            existing = await self._broker.timed("get_order", lambda: self._inner.get_order(coid))
            if existing is None:
                raise AnswerUnknown(
                    f"submit {coid}: the broker says this client_order_id is in use, "
                    "but its look-up does not find it"
                ) from None
            return self._adopt(existing)
        except BrokerUnavailable as exc:
            self.maybe_landed = may_have_landed(exc)
            raise

    @property
    def _inner(self) -> Broker:
        return self._broker.inner

    def _adopt(self, existing: BrokerOrder) -> BrokerOrder:
        """The order the broker holds under our client_order_id: ours if it is the same."""
        order = self.order
        self.maybe_landed = False  # settled: the look-up found what holds the id
        same = (
            existing.symbol.upper() == order.symbol.upper()
            and existing.side == order.side
            and existing.quantity == order.quantity
        )
        if not same:
            raise DuplicateOrder(
                f"client_order_id {order.client_order_id} is already used by order "
                f"{existing.broker_order_id} ({existing.side} {existing.quantity} "
                f"{existing.symbol})",
                code="client_order_id_in_use",
            )
        log.info(
            "%s: adopted order %s for client_order_id %s (it had landed)",
            self._broker.name,
            existing.broker_order_id,
            order.client_order_id,
        )
        return existing


class RetryingBroker:
    """Any ``Broker`` behind the one retry policy; ``inner`` is the adapter it wraps.

    ``sleep`` is what waits between attempts (``asyncio.sleep``; a test passes one that records).
    """

    def __init__(
        self, inner: Broker, policy: RetryPolicy = RetryPolicy(), *, sleep: Sleep = asyncio.sleep
    ):
        self.inner = inner
        self.policy = policy
        self.name = inner.name
        self._sleep = sleep
        self._wait = RetryWait(policy)

    def __repr__(self) -> str:
        return f"RetryingBroker({self.inner!r}, {self.policy!r})"

    # ------------------------------------------------------------------ the retry machinery

    def _retrying(self, what: str, retry_if: Callable[[BaseException], bool]) -> AsyncRetrying:
        attempts = self.policy.attempts

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "%s %s failed (attempt %d/%d), retrying in %.2fs: %s",
                self.name, what, state.attempt_number, attempts, wait, exc,
            )  # fmt: skip

        return AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception(retry_if),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    async def timed(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One call to the inner broker, abandoned after ``call_timeout_s``."""
        limit = self.policy.call_timeout_s
        if limit is None:
            return await call()
        try:
            async with asyncio.timeout(limit):
                return await call()
        except TimeoutError:
            raise BrokerUnavailable(f"{self.name} {what}: no answer within {limit}s") from None

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self._attempts(what, lambda: self.timed(what, call))

    async def _attempts(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        retry_if: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``attempt`` under the policy. The first try is a plain call: building tenacity's
        machinery per call cost more than the call on the hot path, so it is entered only
        after a failure it would retry, with that failure replayed as its first attempt
        (the same waits, logs and number of attempts as tenacity from the start)."""
        retry_if = retry_if or self.policy.retryable
        try:
            return await attempt()
        except BaseException as exc:
            if self.policy.attempts < 2 or not retry_if(exc):
                raise
            replay: list[BaseException] = [exc]

        async def again() -> T:
            if replay:
                raise replay.pop()
            return await attempt()

        result: T = await self._retrying(what, retry_if)(again)
        return result

    # ------------------------------------------------------------------ passed through

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        self.inner.subscribe_quotes(symbols)

    def events(self) -> AsyncIterator[BrokerEvent]:
        return self.inner.events()

    # ------------------------------------------------------------------ retried

    async def account(self) -> Account:
        return await self._retry("account", self.inner.account)

    async def positions(self) -> list[Position]:
        return await self._retry("positions", self.inner.positions)

    async def open_orders(self) -> list[BrokerOrder]:
        return await self._retry("open_orders", self.inner.open_orders)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return await self._retry("get_order", lambda: self.inner.get_order(client_order_id))

    async def quote(self, symbol: str) -> Quote:
        return await self._retry("quote", lambda: self.inner.quote(symbol))

    async def cancel(self, client_order_id: str) -> None:
        await self._retry("cancel", lambda: self.inner.cancel(client_order_id))

    async def cancel_all(self) -> CancelReport:
        return await self._retry("cancel_all", self.inner.cancel_all)

    async def submit_bracket(
        self,
        entry: OrderRequest,
        stop_loss: OrderRequest | None,
        take_profit: OrderRequest | None,
    ) -> list[BrokerOrder]:
        """The adapter's ``submit_bracket`` ([entry, legs...]), tried again only when it
        certainly did not land; after a failure that may have landed it raises AnswerUnknown
        (the entry is settled by a look-up like any order of unknown fate)."""
        method = getattr(self.inner, "submit_bracket", None)
        if method is None:
            raise OrderRejected(f"{self.name} holds no brackets", code="brackets_unsupported")

        async def attempt() -> list[BrokerOrder]:
            placed: list[BrokerOrder] = await self.timed(
                "submit_bracket", lambda: method(entry, stop_loss, take_profit)
            )
            return placed

        try:
            result = await self._attempts("submit_bracket", attempt, self._not_landed)
        except BrokerUnavailable as exc:
            if not may_have_landed(exc):
                raise
            raise AnswerUnknown(
                f"submit_bracket {entry.client_order_id}: it may have reached {self.name} and "
                f"its answer was lost ({exc.message})"
            ) from exc
        return result

    async def adopt_bracket(
        self, entry_id: str, stop_loss_id: str | None, take_profit_id: str | None
    ) -> list[BrokerOrder]:
        """The adapter's ``adopt_bracket`` (a read: retried like one); [] when it has none
        (its legs carry the gateway's ids by themselves)."""
        method = getattr(self.inner, "adopt_bracket", None)
        if method is None:
            return []
        adopted: list[BrokerOrder] = await self._retry(
            "adopt_bracket", lambda: method(entry_id, stop_loss_id, take_profit_id)
        )
        return adopted

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        """The adapter's ``executions`` (a read: retried like one). A broker without it raises
        ``BrokerError(code="executions_unsupported")``: the caller reports the gap instead
        of taking it for "no fills"."""
        method = getattr(self.inner, "executions", None)
        if method is None:
            raise BrokerError(f"{self.name} cannot list executions", code="executions_unsupported")
        found: list[Fill] = await self._retry("executions", lambda: method(client_order_ids))
        return found

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        """Tried again only after a failure that certainly did not land (``NotSent``, 429): a
        replace is not idempotent at every broker (Alpaca refuses to replace an order it
        replaced already), so after a lost answer the caller looks the order up instead."""

        async def attempt() -> BrokerOrder:
            return await self.timed("replace", lambda: self.inner.replace(client_order_id, change))

        return await self._attempts("replace", attempt, self._not_landed)

    def _not_landed(self, exc: BaseException) -> bool:
        """Retried only when it certainly did not land (calls that are not idempotent)."""
        return not may_have_landed(exc) and self.policy.retryable(exc)

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        """Place ``order`` at most once; see the module docstring for what it raises."""
        submission = _Submission(self, order)
        try:
            result = await self._attempts("submit", submission.attempt)
        except AnswerUnknown:
            raise
        except BrokerError as exc:
            if submission.maybe_landed:
                raise AnswerUnknown(
                    f"submit {order.client_order_id}: it may have reached {self.name} and no "
                    f"look-up could say whether it did ({exc.message})"
                ) from exc
            raise
        return result


async def submit_bracket(
    broker: Broker,
    entry: OrderRequest,
    stop_loss: OrderRequest | None,
    take_profit: OrderRequest | None,
) -> list[BrokerOrder]:
    """``broker.submit_bracket`` where the broker has one (every adapter, and the retry layer
    over it); a broker without one refuses (nothing was sent)."""
    method = getattr(broker, "submit_bracket", None)
    if method is None:
        raise OrderRejected(f"{broker.name} holds no brackets", code="brackets_unsupported")
    placed: list[BrokerOrder] = await method(entry, stop_loss, take_profit)
    return placed
