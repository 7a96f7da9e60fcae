"""What a strategy or an operator reads: status and positions (orders: ``routes.orders``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from brokers.base import Position
from gateway.http.deps import Auth
from gateway.http.exact_json import ExactJSONRoute
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.any_token)])

    @api.get("/v1/status")
    async def get_status() -> dict[str, Any]:
        return service.status()

    @api.get("/v1/positions", response_model=list[Position])
    async def get_positions() -> list[Position]:
        return service.engine.book.positions(service.quotes.marks())

    return api
