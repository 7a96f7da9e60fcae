"""The strategy client: what a strategy imports to talk to the gateway (httpx, async and sync).

``guard(strategy, symbol)`` is the replaced system's ``try: generate_signals ... except:
record_failure; return None`` done once, right: an exception inside the block is reported as a
failure (and re-raised unless ``suppress=True``), a clean exit is reported as a success.

    async with AsyncGatewayClient("http://127.0.0.1:8787", token) as gw:
        async with gw.guard("momentum", "AAPL"):
            decision = await gw.submit("sig-1", "momentum", "AAPL", "buy", 10)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx

from gateway.models import Decision


class GatewayClientError(Exception):
    """The gateway refused the request (not a decision: a bad body, a token, a conflict)."""

    def __init__(self, status_code: int, body: Any):
        self.status_code = status_code
        self.body = body
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status_code}: {message or body}")


def _signal_body(
    signal_id: str,
    strategy: str,
    symbol: str,
    side: str,
    quantity: float | int | Decimal | str,
    order_type: str,
    limit_price: float | int | Decimal | str | None,
    time_in_force: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signal_id": signal_id,
        "strategy": strategy,
        "symbol": symbol,
        "side": side,
        "quantity": quantity if not isinstance(quantity, Decimal) else str(quantity),
        "order_type": order_type,
        "time_in_force": time_in_force,
    }
    if limit_price is not None:
        body["limit_price"] = (
            limit_price if not isinstance(limit_price, Decimal) else str(limit_price)
        )
    return body


def _failure_body(
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


def _result(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code != 200:
        raise GatewayClientError(response.status_code, body)
    return body


class AsyncGatewayClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
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

    async def submit(
        self,
        signal_id: str,
        strategy: str,
        symbol: str,
        side: str,
        quantity: float | int | Decimal | str,
        *,
        order_type: str = "market",
        limit_price: float | int | Decimal | str | None = None,
        time_in_force: str = "day",
    ) -> Decision:
        body = _signal_body(
            signal_id, strategy, symbol, side, quantity, order_type, limit_price, time_in_force
        )
        return Decision.model_validate(_result(await self._http.post("/v1/signals", json=body)))

    async def report_failure(
        self,
        strategy: str,
        symbol: str | None,
        error: BaseException | str,
        failure_type: str = "strategy_error",
    ) -> dict[str, Any]:
        body = _failure_body(strategy, symbol, error, failure_type)
        return dict(_result(await self._http.post("/v1/outcomes", json=body)))

    async def report_success(self, strategy: str, symbol: str | None = None) -> dict[str, Any]:
        body = {"strategy": strategy, "symbol": symbol, "ok": True}
        return dict(_result(await self._http.post("/v1/outcomes", json=body)))

    async def status(self) -> dict[str, Any]:
        return dict(_result(await self._http.get("/v1/status")))

    async def halt(self, reason: str) -> dict[str, Any]:
        return dict(_result(await self._http.post("/v1/halt", json={"reason": reason})))

    async def kill(self, reason: str) -> dict[str, Any]:
        return dict(_result(await self._http.post("/v1/kill", json={"reason": reason})))

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


class GatewayClient:
    """The same client for synchronous strategies."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"Authorization": f"Bearer {token}"},
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        signal_id: str,
        strategy: str,
        symbol: str,
        side: str,
        quantity: float | int | Decimal | str,
        *,
        order_type: str = "market",
        limit_price: float | int | Decimal | str | None = None,
        time_in_force: str = "day",
    ) -> Decision:
        body = _signal_body(
            signal_id, strategy, symbol, side, quantity, order_type, limit_price, time_in_force
        )
        return Decision.model_validate(_result(self._http.post("/v1/signals", json=body)))

    def report_failure(
        self,
        strategy: str,
        symbol: str | None,
        error: BaseException | str,
        failure_type: str = "strategy_error",
    ) -> dict[str, Any]:
        body = _failure_body(strategy, symbol, error, failure_type)
        return dict(_result(self._http.post("/v1/outcomes", json=body)))

    def report_success(self, strategy: str, symbol: str | None = None) -> dict[str, Any]:
        body = {"strategy": strategy, "symbol": symbol, "ok": True}
        return dict(_result(self._http.post("/v1/outcomes", json=body)))

    def status(self) -> dict[str, Any]:
        return dict(_result(self._http.get("/v1/status")))

    def halt(self, reason: str) -> dict[str, Any]:
        return dict(_result(self._http.post("/v1/halt", json={"reason": reason})))

    def kill(self, reason: str) -> dict[str, Any]:
        return dict(_result(self._http.post("/v1/kill", json={"reason": reason})))

    @contextlib.contextmanager
    def guard(
        self,
        strategy: str,
        symbol: str | None = None,
        *,
        failure_type: str = "strategy_error",
        suppress: bool = False,
    ) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.report_failure(strategy, symbol, exc, failure_type)
            if not suppress:
                raise
        else:
            self.report_success(strategy, symbol)
