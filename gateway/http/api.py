"""The HTTP API (FastAPI). Stopping is cheap, starting needs authority: any token may halt or
kill; only the admin token resumes.

Errors: 401 for a missing or unknown token, 403 for a valid token of the wrong role, 422 naming
the field and the reason for a bad body, 409 for a refused resume or a reused signal_id, 503 while
the gateway is not ready or shutting down. Nothing a client sends yields a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from brokers.base import BrokerOrder, Position, QuoteEvent
from gateway.http.auth import Role, Tokens
from gateway.models import Decision, HaltRequest, OutcomeReport, ResumeRequest, Signal, SimQuote
from gateway.pipeline.engine import SignalConflict
from gateway.safety.halt import ResumeForbidden, ResumeRefused
from gateway.service import GatewayService

log = logging.getLogger("gateway.http.api")

_bearer = HTTPBearer(auto_error=False)


class KillFailure(BaseModel):
    order_id: str
    reason: str


class KillResponse(BaseModel):
    cancelled: int
    failed: list[KillFailure]
    flattened: list[str] = []
    elapsed_ms: float
    halt_ms: float
    status: dict[str, Any]


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after_s: float | None = None


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        field = ".".join(loc)
        # Model-level validators name their field in the message ("limit_price: required ...").
        if not field and ":" in message:
            field, _, message = message.partition(":")
            message = message.strip()
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": field or "body", "reason": message})
    return errors


def create_app(
    service: GatewayService,
    tokens: Tokens,
    *,
    lifespan: Callable[[FastAPI], Any] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="execution-gateway",
        version="0.1.0",
        description="Between trading strategies and brokers: priced, risk-checked, haltable.",
        lifespan=lifespan,
    )

    def require(role: Role) -> Callable[..., Awaitable[Role]]:
        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Role:
            if credentials is None or not credentials.credentials:
                raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
            granted = tokens.role_of(credentials.credentials)
            if granted is None:
                raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
            if role is Role.ADMIN and granted is not Role.ADMIN:
                raise HTTPException(403, "this action needs the admin token")
            return granted

        return check

    any_token = Depends(require(Role.STRATEGY))
    admin_token = Depends(require(Role.ADMIN))

    def ready() -> None:
        if not service.engine.ready:
            reason = "shutting down" if service.engine.shutting_down else "starting"
            raise HTTPException(503, f"gateway not ready: {reason}")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        return JSONResponse(
            status_code=422,
            content={
                "code": "invalid_request",
                "message": "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
                "errors": errors,
            },
        )

    @app.post("/v1/signals", response_model=Decision, responses={409: {"model": ErrorBody}})
    async def post_signal(signal: Signal, role: Role = any_token) -> Response:
        ready()
        try:
            decision_json = await service.engine.submit_signal(signal)
        except SignalConflict as exc:
            return JSONResponse(
                status_code=409, content={"code": "signal_id_conflict", "message": str(exc)}
            )
        return Response(decision_json, media_type="application/json")

    @app.post("/v1/outcomes")
    async def post_outcome(report: OutcomeReport, role: Role = any_token) -> dict[str, Any]:
        return service.record_outcome(report)

    @app.post("/v1/failures/reset")
    async def reset_failures(role: Role = admin_token) -> dict[str, Any]:
        return service.reset_failures(by="api:admin")

    @app.get("/v1/status")
    async def get_status(role: Role = any_token) -> dict[str, Any]:
        return service.status()

    @app.get("/v1/orders", response_model=list[BrokerOrder])
    async def get_orders(
        status: Literal["open", "all"] = "open", role: Role = any_token
    ) -> list[BrokerOrder]:
        if status == "open":
            return service.open_orders()
        return [stored.to_broker_order() for stored in service.journal.orders()]

    @app.get("/v1/positions", response_model=list[Position])
    async def get_positions(role: Role = any_token) -> list[Position]:
        return service.engine.book.positions(service.quotes.marks())

    @app.post("/v1/halt")
    async def post_halt(body: HaltRequest, role: Role = any_token) -> dict[str, Any]:
        return service.halt_trading(body.reason, by=f"api:{role.value}")

    @app.post("/v1/kill", response_model=KillResponse)
    async def post_kill(body: HaltRequest, role: Role = any_token) -> dict[str, Any]:
        return await service.kill(body.reason, by=f"api:{role.value}")

    @app.post("/v1/resume", responses={409: {"model": ErrorBody}, 403: {"model": ErrorBody}})
    async def post_resume(body: ResumeRequest | None = None, role: Role = admin_token) -> Any:
        body = body or ResumeRequest()
        try:
            return service.resume(
                by=f"api:{role.value}", force=body.force, auth_code=body.auth_code
            )
        except ResumeRefused as exc:
            return JSONResponse(status_code=409, content=exc.to_dict())
        except ResumeForbidden as exc:
            return JSONResponse(
                status_code=403, content={"code": "auth_code_invalid", "message": str(exc)}
            )

    @app.post("/v1/sim/quotes")
    async def post_sim_quotes(
        quotes: list[SimQuote], role: Role = admin_token
    ) -> list[dict[str, Any]]:
        from brokers.simulated.broker import SimulatedBroker

        broker = service.broker
        if not isinstance(broker, SimulatedBroker):
            raise HTTPException(404, "the simulated market exists only with broker: simulated")
        taken = []
        for q in quotes:
            ts = q.ts
            if isinstance(ts, (int, float)):
                ts = datetime.fromtimestamp(ts, UTC)
            elif ts is not None and ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            quote, fills = broker.set_quote(q.symbol, q.bid, q.ask, ts)
            # The move reaches the book and the risk measures before this call returns, not only
            # when the stream delivers it (applying the same update twice changes nothing).
            for order in fills:
                service.engine.apply_order_update(order)
            service.engine.handle_event(QuoteEvent(quote=quote))
            taken.append(quote.model_dump(mode="json"))
        return taken

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if service.engine.ready:
            return JSONResponse(
                status_code=200, content={"status": "ready", "state": service.engine.state.value}
            )
        return JSONResponse(status_code=503, content={"status": "not ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        payload, content_type = service.metrics.render()
        return Response(payload, media_type=content_type)

    return app
