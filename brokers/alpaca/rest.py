"""The edge between alpaca-py's blocking REST clients and our async adapter.

- ``translate`` turns whatever alpaca-py / requests raise into ``brokers.errors`` (the one place
  that knows vendor exceptions).
- ``tame`` switches off alpaca-py's own retries (it sleeps with ``time.sleep(3)`` on 429/504,
  which would block a worker thread and hide rate limits from us) and gives every request a
  timeout (alpaca-py sets none, so a hung socket would hold a thread forever).
- ``RetryPolicy`` is our single tenacity policy: bounded attempts, jittered exponential wait,
  and a 429's ``X-Ratelimit-Reset`` honoured.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_DUPLICATE_TEXT = "client_order_id must be unique"


class _TimeoutSession(requests.Session):
    """A requests session whose every request carries a timeout unless one is given."""

    def __init__(self, timeout_s: float):
        super().__init__()
        self.timeout_s = timeout_s

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def tame(
    client: Any, *, timeout_s: float, transport: requests.adapters.BaseAdapter | None = None
) -> None:
    """Make an alpaca-py ``RESTClient`` safe for us (see the module docstring).

    ``retry_attempts=0`` cannot be passed to the constructor (alpaca-py ignores values <= 0),
    so the private settings of ``alpaca.common.rest.RESTClient`` are set directly: with
    ``_retry = 0`` and no retry codes ``_one_request`` raises ``APIError`` on the first 429.
    ``transport`` (a requests adapter) replaces the network, for tests.
    """
    client._retry = 0
    client._retry_codes = []
    session = _TimeoutSession(timeout_s)
    if transport is not None:
        session.mount("http://", transport)
        session.mount("https://", transport)
    client._session = session


def _body(error: APIError) -> tuple[str, str | None]:
    """(message, code) of an error body; the body may lack ``code`` (a 401 is
    ``{"message": "unauthorized."}``, and ``APIError.code`` then raises) or not be JSON."""
    text = str(error)
    try:
        parsed = json.loads(text)
    except ValueError:
        return (text.strip()[:500] or "no body"), None
    if not isinstance(parsed, dict):
        return text.strip()[:500], None
    code = parsed.get("code")
    message = parsed.get("message")
    return (str(message) if message else text.strip()[:500]), (None if code is None else str(code))


def _retry_after_s(response: requests.Response | None) -> float | None:
    """Seconds until the quota resets: ``X-Ratelimit-Reset`` (epoch seconds) or ``Retry-After``."""
    if response is None:
        return None
    reset = response.headers.get("X-Ratelimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    after = response.headers.get("Retry-After")
    if after is not None:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(after).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return None


def translate(exc: BaseException) -> BrokerError:
    """The project's error for anything raised inside an alpaca-py call."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, APIError):
        status = exc.status_code
        message, code = _body(exc)
        if status == 429:
            return RateLimited(
                message, retry_after_s=_retry_after_s(exc.response), code=code, status=status
            )
        if status is None or status >= 500:
            return BrokerUnavailable(message, code=code, status=status)
        if status == 404:
            return OrderNotFound(message, code=code, status=status)
        if status == 422 and _DUPLICATE_TEXT in message.lower():
            return DuplicateOrder(message, code=code, status=status)
        # 401/403 (auth, buying power), 422 (invalid order) and any other 4xx: the broker said no.
        return OrderRejected(message, code=code, status=status)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return BrokerUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, requests.RequestException):
        return BrokerUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):
        # A 2xx answer whose body is not JSON (requests' JSONDecodeError is a ValueError).
        return BrokerUnavailable(f"unreadable answer: {exc}")
    return BrokerError(f"unexpected {type(exc).__name__}: {exc}")


def answer_lost(exc: BrokerError) -> bool:
    """True when the request may have reached Alpaca without us seeing its answer."""
    return isinstance(exc, BrokerUnavailable) and not isinstance(exc, RateLimited)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient errors with jittered exponential waits.

    A 429 waits as long as its reset header says (plus jitter), up to ``max_rate_limit_wait_s``;
    a reset further away than that is not waited for: the RateLimited goes to the caller.
    """

    attempts: int = 4
    initial_wait_s: float = 0.25
    max_wait_s: float = 8.0
    max_rate_limit_wait_s: float = 30.0

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        # exponential, capped, plus up to one initial wait of jitter (written out rather than
        # tenacity's wait_exponential_jitter, whose arguments changed between 8.x and 9.x)
        exponential = self.initial_wait_s * 2.0 ** max(0, state.attempt_number - 1)
        backoff = min(self.max_wait_s, exponential) + random.uniform(0, self.initial_wait_s)
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.max_rate_limit_wait_s) + backoff * 0.1
        return float(backoff)

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, BrokerUnavailable):
            return False
        if isinstance(exc, RateLimited) and (exc.retry_after_s or 0) > self.max_rate_limit_wait_s:
            return False
        return True

    async def run(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "alpaca %s failed (attempt %d/%d), retrying: %s",
                what,
                state.attempt_number,
                self.attempts,
                exc,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            before_sleep=before_sleep,
            reraise=True,
        )

        async def call() -> T:  # a coroutine function, whatever ``op`` is (tenacity checks)
            return await op()

        result: T = await retrying(call)
        return result
