"""The orders a strategy manages: read them, cancel them (DELETE), replace them (PATCH).

A bound token sees and touches only its strategies' orders: another strategy's order answers
404, exactly as an unknown one does. An unknown query parameter is a 422 naming it (a typo in a
filter must never widen what a strategy acts on).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from gateway.errors import (
    BrokerUnreachable,
    CancelRefused,
    OrderNotOpen,
    OrderNotSettled,
    OrderStateError,
    OrderUnknown,
    ReplaceInvalid,
    SignalConflict,
)
from gateway.http.deps import Auth, actor, principal
from gateway.http.exact_json import ExactJSONRoute
from gateway.http.query import known_params
from gateway.http.schemas import ErrorBody
from gateway.models import Decision, Order, OrderReplace, StrategyName, Symbol
from gateway.service import GatewayService
from gateway.store.journal import JournalUnavailable


def not_found(client_order_id: str) -> JSONResponse:
    return JSONResponse(
        status_code=404,
        content={"code": "order_not_found", "message": f"no order {client_order_id}"},
    )


def _error(status: int, code: str, message: str, order: object = None) -> JSONResponse:
    content: dict[str, object] = {"code": code, "message": message}
    if isinstance(order, Order):
        content["order"] = order.model_dump(mode="json")
    return JSONResponse(status_code=status, content=content)


def refusal(exc: Exception) -> JSONResponse:
    """The answer to a cancel or replace that did not happen (nothing changed but, for a
    broker that could not be reached, the journaled intent)."""
    order = exc.order if isinstance(exc, OrderStateError) else None
    for kind, status, code in (
        (OrderUnknown, 404, "order_not_found"),
        (OrderNotOpen, 409, "order_not_open"),
        (CancelRefused, 409, "cancel_refused"),
        (OrderNotSettled, 409, "order_not_settled"),
        (ReplaceInvalid, 422, "replace_invalid"),
        (SignalConflict, 409, "signal_id_conflict"),
        (BrokerUnreachable, 503, "broker_unavailable"),
        (JournalUnavailable, 503, "journal_unavailable"),
    ):
        if isinstance(exc, kind):
            message = f"no order {exc}" if kind is OrderUnknown else str(exc)
            return _error(status, code, message, order)
    raise exc


AMEND_ERRORS = (
    OrderUnknown,
    OrderStateError,
    ReplaceInvalid,
    SignalConflict,
    BrokerUnreachable,
    JournalUnavailable,
)
AMEND_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (404, 409, 422, 503)
}


def ready(service: GatewayService) -> None:
    engine = service.engine
    if not engine.ready:
        reason = "shutting down" if engine.shutting_down else "starting"
        raise HTTPException(503, f"gateway not ready: {reason}")


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
    _reads(api, service)
    _changes(api, service)
    return api


def _reads(api: APIRouter, service: GatewayService) -> None:
    @api.get(
        "/v1/orders",
        response_model=list[Order],
        responses={404: {"model": ErrorBody}},
        dependencies=[Depends(known_params("status", "strategy", "symbol", "limit", "after"))],
    )
    async def get_orders(
        request: Request,
        status: Literal["open", "all"] = "open",
        strategy: StrategyName | None = None,
        symbol: Symbol | None = None,
        limit: int | None = Query(None, ge=1, le=10_000),
        after: str | None = None,
    ) -> list[Order] | JSONResponse:
        # Without limit and after the answer is every matching order (DESIGN); with them, a
        # page: at most ``limit`` orders, oldest first, after the order ``after`` names (the
        # last of the page before). The end is an empty page.
        strategies = visible(request, strategy)
        if after is not None and service.engine.views.get(after, strategies) is None:
            return not_found(after)
        if strategies is not None and not strategies:
            return []
        return service.engine.views.list(
            open_only=status == "open",
            strategies=strategies,
            symbol=symbol,
            limit=limit,
            after=after,
        )

    @api.get(
        "/v1/orders/{client_order_id}",
        response_model=Order,
        responses={404: {"model": ErrorBody}},
        dependencies=[Depends(known_params())],
    )
    async def get_order(client_order_id: str, request: Request) -> Order | JSONResponse:
        found = service.engine.views.get(client_order_id, principal(request).strategies)
        return not_found(client_order_id) if found is None else found


def _changes(api: APIRouter, service: GatewayService) -> None:
    @api.delete(
        "/v1/orders/{client_order_id}",
        response_model=Order,
        responses=AMEND_RESPONSES,
        dependencies=[Depends(known_params())],
    )
    async def cancel_order(client_order_id: str, request: Request) -> Order | JSONResponse:
        ready(service)
        try:
            return await service.engine.cancels.cancel(
                client_order_id, principal(request).strategies, actor(request)
            )
        except AMEND_ERRORS as exc:
            return refusal(exc)

    @api.patch(
        "/v1/orders/{client_order_id}",
        response_model=Decision,
        responses=AMEND_RESPONSES,
        dependencies=[Depends(known_params())],
    )
    async def replace_order(
        client_order_id: str, patch: OrderReplace, request: Request
    ) -> Response:
        ready(service)
        try:
            answer = await service.engine.replaces.replace(
                client_order_id, patch, principal(request).strategies
            )
        except AMEND_ERRORS as exc:
            return refusal(exc)
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
        return Response(answer.decision_json, media_type="application/json", headers=headers)
