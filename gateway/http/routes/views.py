"""What a strategy or an operator reads: status, orders, positions."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends

from brokers.base import BrokerOrder, Position
from gateway.http.deps import Auth
from gateway.http.exact_json import ExactJSONRoute
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.any_token)])

    @api.get("/v1/status")
    async def get_status() -> dict[str, Any]:
        return service.status()

    @api.get("/v1/orders", response_model=list[BrokerOrder])
    async def get_orders(status: Literal["open", "all"] = "open") -> list[BrokerOrder]:
        if status == "open":
            return service.open_orders()
        return [stored.to_broker_order() for stored in service.journal.orders()]

    @api.get("/v1/positions", response_model=list[Position])
    async def get_positions() -> list[Position]:
        return service.engine.book.positions(service.quotes.marks())

    return api
