"""The simulated market's controls and fire drills (admin token, simulated broker only: 404
with any other broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from brokers.base import QuoteEvent
from brokers.simulated import SimulatedBroker
from brokers.simulated.faults import Faults
from gateway.http.deps import Auth
from gateway.http.exact_json import ExactJSONRoute
from gateway.models import SimQuote
from gateway.service import GatewayService


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.admin_token)])

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

    @api.get("/v1/sim/faults")
    async def get_sim_faults() -> Faults:
        return simulated().faults

    @api.post("/v1/sim/faults")
    async def post_sim_faults(faults: Faults) -> Faults:
        """Put these faults in force instead of the ones before (``{}`` clears every fault);
        answers the faults now in force (``fail_lookups_s``: the seconds still left)."""
        return simulated().set_faults(faults)

    return api
