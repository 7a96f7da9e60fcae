"""POST /v1/signals and /v1/outcomes: what a strategy sends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, Response

from gateway.errors import SignalConflict
from gateway.http.deps import Auth
from gateway.http.schemas import ErrorBody
from gateway.models import Decision, OutcomeReport, Signal
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(dependencies=[Depends(auth.any_token)])

    @api.post("/v1/signals", response_model=Decision, responses={409: {"model": ErrorBody}})
    async def post_signal(signal: Signal) -> Response:
        engine = service.engine
        if not engine.ready:
            reason = "shutting down" if engine.shutting_down else "starting"
            raise HTTPException(503, f"gateway not ready: {reason}")
        try:
            decision_json = await engine.submit_signal(signal)
        except SignalConflict as exc:
            return JSONResponse(
                status_code=409, content={"code": "signal_id_conflict", "message": str(exc)}
            )
        return Response(decision_json, media_type="application/json")

    @api.post("/v1/outcomes")
    async def post_outcome(report: OutcomeReport) -> dict[str, Any]:
        return service.record_outcome(report)

    return api
