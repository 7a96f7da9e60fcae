"""POST /v1/signals and /v1/outcomes: what a strategy sends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from gateway.errors import SignalConflict
from gateway.http.deps import Auth, check_strategy
from gateway.http.exact_json import ExactJSONRoute
from gateway.http.schemas import ErrorBody
from gateway.models import Decision, OutcomeReport, Signal
from gateway.service import GatewayService
from gateway.store.journal import JournalUnavailable


async def answer_signal(service: GatewayService, signal: Signal) -> Response:
    """The answer to a signal of a ready gateway, its token already checked: the route's and
    the fast path's (gateway.http.fastpath), so both answer the same bytes."""
    try:
        answer = await service.engine.submit_signal(signal)
    except SignalConflict as exc:
        return JSONResponse(
            status_code=409, content={"code": "signal_id_conflict", "message": str(exc)}
        )
    except JournalUnavailable as exc:
        # Nothing was answered that is not durable; nothing left without its intent.
        return JSONResponse(
            status_code=503, content={"code": "journal_unavailable", "message": str(exc)}
        )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(answer.decision_json, media_type="application/json", headers=headers)


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.any_token)])

    @api.post(
        "/v1/signals",
        response_model=Decision,
        responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def post_signal(signal: Signal, request: Request) -> Response:
        check_strategy(request, signal.strategy)
        engine = service.engine
        if not engine.ready:
            reason = "shutting down" if engine.shutting_down else "starting"
            raise HTTPException(503, f"gateway not ready: {reason}")
        return await answer_signal(service, signal)

    @api.post("/v1/outcomes")
    async def post_outcome(report: OutcomeReport, request: Request) -> dict[str, Any]:
        check_strategy(request, report.strategy)
        return service.record_outcome(report)

    return api
