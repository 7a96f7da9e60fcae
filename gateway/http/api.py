"""The HTTP API (FastAPI). Stopping is cheap, starting needs authority: any token may halt or
kill; only the admin token resumes.

Errors: 401 for a missing or unknown token, 403 for a valid token of the wrong role, 422 naming
the field and the reason for a bad body, 409 for a refused resume or a reused signal_id, 503 while
the gateway is not ready or shutting down, 413 for a body over 1 MiB (before anything reads
it). Nothing a client sends yields a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.http.auth import Tokens
from gateway.http.deps import StrategyNotAllowed, make_auth
from gateway.http.fastpath import SignalFastPath
from gateway.http.limits import BodyLimit, BodyTooLarge, body_too_large
from gateway.http.routes import events as event_routes
from gateway.http.routes import orders, probes, safety, signals, sim, ui, views
from gateway.http.schemas import COMMON_RESPONSES
from gateway.service import GatewayService


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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    return JSONResponse(
        status_code=422,
        content={
            "code": "invalid_request",
            "message": "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            "errors": errors,
        },
    )


async def _strategy_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=403, content={"code": "strategy_not_allowed", "message": str(exc)}
    )


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
        # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN, which an
        # offline host cannot reach. GET /openapi.json is the schema; any OpenAPI viewer reads it.
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_exception_handler(StrategyNotAllowed, _strategy_not_allowed)
    # Added first, so BodyLimit (added last, the outer one) has checked the body's size.
    app.add_middleware(SignalFastPath, service=service, tokens=tokens)
    app.add_middleware(BodyLimit)
    auth = make_auth(tokens)
    for area in (signals, safety, views, orders, sim):
        app.include_router(area.router(service, auth), responses=COMMON_RESPONSES)
    app.include_router(probes.router(service))
    app.include_router(event_routes.router(service, auth), responses=COMMON_RESPONSES)
    app.include_router(ui.router(service, auth), responses=COMMON_RESPONSES)
    return app
