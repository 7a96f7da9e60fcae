"""The simulated market's controls (admin token, simulated broker only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from brokers.base import QuoteEvent
from brokers.simulated import SimulatedBroker
from gateway.http.deps import Auth
from gateway.models import SimQuote
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(dependencies=[Depends(auth.admin_token)])

    def simulated() -> SimulatedBroker:
        broker = service.broker
        if not isinstance(broker, SimulatedBroker):
            raise HTTPException(404, "the simulated market exists only with broker: simulated")
        return broker

    @api.post("/v1/sim/quotes")
    async def post_sim_quotes(quotes: list[SimQuote]) -> list[dict[str, Any]]:
        broker = simulated()
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
            service.engine.events.handle(QuoteEvent(quote=quote))
            taken.append(quote.model_dump(mode="json"))
        return taken

    return api
