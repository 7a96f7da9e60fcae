"""What both clients share: the error, request bodies, answers, and the reconnect backoff."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

Number = float | int | Decimal | str


class GatewayClientError(Exception):
    """The gateway refused the request (not a decision: a bad body, a token, a conflict, an
    unknown order)."""

    def __init__(self, status_code: int, body: Any):
        self.status_code = status_code
        self.body = body
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status_code}: {message or body}")

    @property
    def code(self) -> str | None:
        """The gateway's machine-readable code (``order_not_found``, ...), when it gave one."""
        code = self.body.get("code") if isinstance(self.body, dict) else None
        return code if isinstance(code, str) else None


def number(value: Number) -> float | int | str:
    # A Decimal goes as its exact text; the gateway reads it exactly.
    return str(value) if isinstance(value, Decimal) else value


def signal_body(
    signal_id: str,
    strategy: str,
    symbol: str,
    side: str,
    quantity: Number,
    order_type: str,
    limit_price: Number | None,
    time_in_force: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signal_id": signal_id,
        "strategy": strategy,
        "symbol": symbol,
        "side": side,
        "quantity": number(quantity),
        "order_type": order_type,
        "time_in_force": time_in_force,
    }
    if limit_price is not None:
        body["limit_price"] = number(limit_price)
    return body


def replace_body(
    signal_id: str,
    quantity: Number | None,
    limit_price: Number | None,
    stop_price: Number | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"signal_id": signal_id}
    for name, value in (
        ("quantity", quantity),
        ("limit_price", limit_price),
        ("stop_price", stop_price),
    ):
        if value is not None:
            body[name] = number(value)
    return body


def failure_body(
    strategy: str, symbol: str | None, error: BaseException | str, failure_type: str
) -> dict[str, Any]:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
    return {
        "strategy": strategy,
        "symbol": symbol,
        "ok": False,
        "failure_type": failure_type,
        "error": text[:2000],
    }


def order_path(client_order_id: str) -> str:
    return f"/v1/orders/{quote(client_order_id, safe='')}"


def filters(**given: str | None) -> dict[str, str]:
    """Query parameters for the filters given (None: not filtered)."""
    return {name: value for name, value in given.items() if value is not None}


def page(limit: int | None) -> dict[str, str]:
    """The ``limit`` query parameter; without one the gateway answers every match."""
    if limit is None:
        return {}
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return {"limit": str(limit)}


def result(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code != 200:
        raise GatewayClientError(response.status_code, body)
    return body


class Backoff:
    """Waits between reconnects: doubling from ``first_s`` up to ``max_s``, with jitter (many
    strategies reconnecting to a restarted gateway do not arrive at once)."""

    def __init__(self, first_s: float = 0.1, max_s: float = 5.0):
        self.first_s = first_s
        self.max_s = max_s
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_s(self) -> float:
        delay = min(self.max_s, self.first_s * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return delay * random.uniform(0.5, 1.0)
