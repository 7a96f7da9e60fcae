"""Halt, kill, resume and the failure reset: stopping is cheap, starting needs authority."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.http.deps import Auth, actor
from gateway.http.exact_json import ExactJSONRoute
from gateway.http.schemas import ErrorBody, KillResponse
from gateway.models import HaltRequest, ResumeRequest
from gateway.safety.halt import HaltStateWriteError, ResumeForbidden, ResumeRefused
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute)
    any_token = [Depends(auth.any_token)]
    admin_token = [Depends(auth.admin_token)]

    firm_answers: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 503: {}}

    async def firm_scope(body: HaltRequest, request: Request, *, kill: bool) -> Any:
        """{"scope": "firm"}: every gateway of the firm, through PostgreSQL (this one first)."""
        content: dict[str, Any]
        if service.firm is None:
            content = {
                "code": "firm_not_configured",
                "message": "scope: firm needs a firm: section in this gateway's gateway.yaml",
            }
            return JSONResponse(status_code=422, content=content)
        answer, error = await service.firm.request(body.reason, by=actor(request), kill=kill)
        if error is None:
            return answer
        # Halted here all the same; the other gateways were not told.
        content = {"code": "firm_unreachable", "message": error, "answer": answer}
        return JSONResponse(status_code=503, content=content)

    @api.post("/v1/halt", dependencies=any_token, responses=firm_answers)
    async def post_halt(body: HaltRequest, request: Request) -> Any:
        if body.scope == "firm":
            return await firm_scope(body, request, kill=False)
        return service.halt_trading(body.reason, by=actor(request))

    @api.post(
        "/v1/kill", response_model=KillResponse, dependencies=any_token, responses=firm_answers
    )
    async def post_kill(body: HaltRequest, request: Request) -> Any:
        if body.scope == "firm":
            return await firm_scope(body, request, kill=True)
        return await service.kill(body.reason, by=actor(request))

    @api.post(
        "/v1/resume",
        dependencies=admin_token,
        responses={409: {"model": ErrorBody}, 403: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def post_resume(request: Request, body: ResumeRequest | None = None) -> Any:
        body = body or ResumeRequest()
        try:
            return service.resume(by=actor(request), force=body.force, auth_code=body.auth_code)
        except ResumeRefused as exc:
            # HTTP's Retry-After takes whole seconds: rounded up, so a client that waits it out
            # is never refused again for the same cooldown.
            headers = (
                {"Retry-After": str(math.ceil(exc.retry_after_s))}
                if exc.retry_after_s is not None
                else None
            )
            return JSONResponse(status_code=409, content=exc.to_dict(), headers=headers)
        except HaltStateWriteError as exc:
            # The resume could not be made durable: the gateway stays halted.
            return JSONResponse(
                status_code=503, content={"code": "state_unwritable", "message": str(exc)}
            )
        except ResumeForbidden as exc:
            return JSONResponse(
                status_code=403, content={"code": "auth_code_invalid", "message": str(exc)}
            )

    @api.post("/v1/failures/reset", dependencies=admin_token)
    async def reset_failures(request: Request) -> dict[str, Any]:
        return service.reset_failures(by=actor(request))

    return api
