"""Liveness, readiness and metrics: no token (a load balancer and Prometheus ask these)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from gateway.http.exact_json import ExactJSONRoute
from gateway.service import GatewayService


def router(service: GatewayService) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        if service.engine.ready:
            return JSONResponse(
                status_code=200, content={"status": "ready", "state": service.engine.state.value}
            )
        return JSONResponse(status_code=503, content={"status": "not ready"})

    @api.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    async def metrics() -> Response:
        payload, content_type = service.metrics.render()
        return Response(payload, media_type=content_type)

    return api
