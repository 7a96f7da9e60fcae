"""The edge between alpaca-py's blocking REST clients and our async adapter.

- ``translate`` turns whatever alpaca-py / requests raise into ``brokers.errors`` (the one place
  that knows vendor exceptions), telling a request that never left (``NotSent``: no connection
  could be made) from one whose answer was lost (``BrokerUnavailable``: it may have landed).
- ``tame`` switches off alpaca-py's own retries (it sleeps with ``time.sleep(3)`` on 429/504,
  which would block a worker thread and hide rate limits from us) and gives every request a
  timeout (alpaca-py sets none, so a hung socket would hold a thread forever).

Nothing here retries: the adapter makes one attempt per call, and ``brokers.retrying`` decides.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from urllib3.exceptions import NewConnectionError

from brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    NotSent,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)

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


def _never_sent(exc: requests.RequestException) -> bool:
    """True when no connection could be made, so nothing of the request was written: a connect
    timeout, or a refused connection / unknown host (urllib3's NewConnectionError, which
    requests wraps in a ConnectionError around a MaxRetryError)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    cause = getattr(exc.args[0], "reason", exc.args[0])
    return isinstance(cause, NewConnectionError)


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
    if isinstance(exc, requests.JSONDecodeError):
        return BrokerUnavailable(f"unreadable answer: {exc}")  # a 2xx whose body is not JSON
    if isinstance(exc, requests.RequestException):
        if _never_sent(exc):
            return NotSent(f"{type(exc).__name__}: {exc}")
        # a read timeout, a reset after the request was written, ...: it may have landed
        return BrokerUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # the json module's own, should alpaca-py use it
        return BrokerUnavailable(f"unreadable answer: {exc}")
    return BrokerError(f"unexpected {type(exc).__name__}: {exc}")
