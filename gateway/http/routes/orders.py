"""The orders a strategy manages: read them, cancel them, replace them.

A bound token sees and touches only its strategies' orders: another strategy's order answers
404, exactly as an unknown one does. An unknown query parameter is a 422 naming it (a typo in a
filter must never widen what a strategy acts on).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.http.deps import Auth, principal
from gateway.http.exact_json import ExactJSONRoute
from gateway.http.schemas import ErrorBody
from gateway.models import Order, StrategyName, Symbol
from gateway.service import GatewayService


def only_query(*names: str) -> Callable[[Request], None]:
    """A dependency refusing any query parameter not in ``names`` (422, naming it)."""

    def check(request: Request) -> None:
        unknown = [key for key in request.query_params if key not in names]
        if unknown:
            raise RequestValidationError(
                [
                    {"loc": ("query", key), "msg": "unknown query parameter", "type": "extra"}
                    for key in unknown
                ]
            )

    return check


def not_found(client_order_id: str) -> JSONResponse:
    return JSONResponse(
        status_code=404,
        content={"code": "order_not_found", "message": f"no order {client_order_id}"},
    )


def visible(request: Request, strategy: str | None) -> Collection[str] | None:
    """The strategies whose orders the request may see (None: any), narrowed by a filter."""
    bound = principal(request).strategies
    if strategy is None:
        return bound
    if bound is not None and strategy not in bound:
        return ()
    return (strategy,)


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.any_token)])

    @api.get(
        "/v1/orders",
        response_model=list[Order],
        dependencies=[Depends(only_query("status", "strategy", "symbol"))],
    )
    async def get_orders(
        request: Request,
        status: Literal["open", "all"] = "open",
        strategy: StrategyName | None = None,
        symbol: Symbol | None = None,
    ) -> list[Order]:
        strategies = visible(request, strategy)
        if strategies is not None and not strategies:
            return []
        return service.engine.views.list(
            open_only=status == "open", strategies=strategies, symbol=symbol
        )

    @api.get(
        "/v1/orders/{client_order_id}",
        response_model=Order,
        responses={404: {"model": ErrorBody}},
        dependencies=[Depends(only_query())],
    )
    async def get_order(client_order_id: str, request: Request) -> Order | JSONResponse:
        found = service.engine.views.get(client_order_id, principal(request).strategies)
        return not_found(client_order_id) if found is None else found

    return api
