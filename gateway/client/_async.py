"""The asynchronous client (httpx.AsyncClient)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gateway.client._common import (
    Backoff,
    Number,
    failure_body,
    filters,
    order_path,
    page,
    replace_body,
    result,
    signal_body,
)
from gateway.client._events import RETRY_STATUSES, Event, SSEParser
from gateway.models import Decision, FillRecord, Order


class AsyncGatewayClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- signals and outcomes ----------------------------------------------------------------

    async def submit(
        self,
        signal_id: str,
        strategy: str,
        symbol: str,
        side: str,
        quantity: Number,
        *,
        order_type: str = "market",
        limit_price: Number | None = None,
        time_in_force: str = "day",
    ) -> Decision:
        body = signal_body(
            signal_id, strategy, symbol, side, quantity, order_type, limit_price, time_in_force
        )
        return Decision.model_validate(result(await self._http.post("/v1/signals", json=body)))

    async def report_failure(
        self,
        strategy: str,
        symbol: str | None,
        error: BaseException | str,
        failure_type: str = "strategy_error",
    ) -> dict[str, Any]:
        body = failure_body(strategy, symbol, error, failure_type)
        return dict(result(await self._http.post("/v1/outcomes", json=body)))

    async def report_success(self, strategy: str, symbol: str | None = None) -> dict[str, Any]:
        body = {"strategy": strategy, "symbol": symbol, "ok": True}
        return dict(result(await self._http.post("/v1/outcomes", json=body)))

    @contextlib.asynccontextmanager
    async def guard(
        self,
        strategy: str,
        symbol: str | None = None,
        *,
        failure_type: str = "strategy_error",
        suppress: bool = False,
    ) -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            await self.report_failure(strategy, symbol, exc, failure_type)
            if not suppress:
                raise
        else:
            await self.report_success(strategy, symbol)

    # --- the orders a strategy manages -------------------------------------------------------

    async def order(self, client_order_id: str) -> Order:
        """One order; GatewayClientError 404 (code order_not_found) when unknown."""
        answer = await self._http.get(order_path(client_order_id))
        return Order.model_validate(result(answer))

    async def orders(
        self,
        status: str | None = None,
        strategy: str | None = None,
        symbol: str | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Order]:
        """The orders matching every filter given (status: open, the default, or all), oldest
        first; ``limit`` of them at most, those after the order ``after`` (a client_order_id)."""
        params = filters(status=status, strategy=strategy, symbol=symbol, after=after)
        params.update(page(limit))
        answer = result(await self._http.get("/v1/orders", params=params))
        return [Order.model_validate(item) for item in answer]

    async def cancel(self, client_order_id: str) -> Order:
        """The order after the broker's answer; 404 unknown, 409 (order_not_open) final."""
        return Order.model_validate(result(await self._http.delete(order_path(client_order_id))))

    async def replace(
        self,
        client_order_id: str,
        signal_id: str,
        *,
        quantity: Number | None = None,
        limit_price: Number | None = None,
        stop_price: Number | None = None,
    ) -> Decision:
        """Move a resting order, decided like a signal (``signal_id`` makes it idempotent)."""
        body = replace_body(signal_id, quantity, limit_price, stop_price)
        answer = await self._http.patch(order_path(client_order_id), json=body)
        return Decision.model_validate(result(answer))

    async def fills(
        self,
        strategy: str | None = None,
        symbol: str | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[FillRecord]:
        """The fills matching every filter given, oldest first; ``limit`` of them at most,
        those after the fill ``after`` (the fill_id of the last one a client has)."""
        params = filters(strategy=strategy, symbol=symbol, after=after)
        params.update(page(limit))
        answer = result(await self._http.get("/v1/fills", params=params))
        return [FillRecord.model_validate(item) for item in answer]

    async def events(
        self,
        after: int | None = None,
        strategy: str | None = None,
        *,
        idle_timeout_s: float = 45.0,
        backoff: Backoff | None = None,
    ) -> AsyncIterator[Event]:
        """Follow the event stream: every event after ``after`` (None: from now; 0: from the
        start), exactly once, in order. A dropped connection, a gateway restart or a silence
        past ``idle_timeout_s`` (the gateway sends a keepalive every 15 s) is ridden out: it
        reconnects with ``Last-Event-ID``, waiting longer each time up to ``backoff.max_s``. It
        ends only when the caller stops iterating; a refusal (401, 403, 409, 422) raises."""
        parser = SSEParser(after)
        wait = backoff or Backoff()
        params = filters(strategy=strategy)
        timeout = httpx.Timeout(self._timeout_s, read=idle_timeout_s)
        while True:
            headers = {"Accept": "text/event-stream"}
            if parser.position is not None:
                headers["Last-Event-ID"] = str(parser.position)
            try:
                async with self._http.stream(
                    "GET", "/v1/events", params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        if response.status_code not in RETRY_STATUSES:
                            result(response)  # raises GatewayClientError
                    else:
                        wait.reset()
                        async for line in response.aiter_lines():
                            event = parser.feed(line)
                            if event is not None:
                                yield event
            except httpx.TransportError:
                pass  # refused, lost or silent: reconnect below
            await asyncio.sleep(wait.next_s())

    # --- status and safety -------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return dict(result(await self._http.get("/v1/status")))

    async def halt(self, reason: str) -> dict[str, Any]:
        return dict(result(await self._http.post("/v1/halt", json={"reason": reason})))

    async def kill(self, reason: str) -> dict[str, Any]:
        return dict(result(await self._http.post("/v1/kill", json={"reason": reason})))
