"""A bracket on its way to the broker when the kill switch fires, whose entry fills the moment
it lands (a market entry): the kill's cancel_all ran before it landed.

Guarantee pinned (DESIGN "Risk states and triggers": the kill switch cancels every open order
at the broker, including one on the wire; "Stops and protective orders at the broker": the
kill switch cancels the legs as well): once the kill has returned, no leg of that bracket rests
at the broker (and the gateway does not show one open)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderRequest
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.service import GatewayService


class HeldBrackets(SimulatedBroker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2, **kwargs)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def submit_bracket(
        self,
        entry: OrderRequest,
        stop_loss: OrderRequest | None,
        take_profit: OrderRequest | None,
    ) -> list[BrokerOrder]:
        self.entered.set()
        await self.release.wait()
        return await super().submit_bracket(entry, stop_loss, take_profit)


def bracket(signal_id: str, entry: dict[str, Any]) -> Signal:
    return Signal(
        signal_id=signal_id,
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=5,
        stop_loss_price=180,
        take_profit_price=220,
        **entry,
    )


ENTRIES = [
    {},  # a market entry: fills on landing, its legs start working
    {"order_type": "limit", "limit_price": 195, "time_in_force": "gtc"},  # rests, legs held
]


@pytest.mark.parametrize("entry", ENTRIES, ids=["market", "limit"])
async def test_a_bracket_landing_after_the_kills_cancel_all_leaves_no_leg_resting(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], entry: Any
) -> None:
    broker = HeldBrackets()
    service: GatewayService = await make_service(make_config(), broker=broker)
    deciding = asyncio.create_task(service.engine.submit_signal(bracket("bk-1", entry)))
    await broker.entered.wait()
    assert service.engine.sender.in_flight == 1
    killing = asyncio.create_task(service.kill("drill", by="test"))
    for _ in range(20):  # let the kill's cancel_all run before the bracket lands
        await asyncio.sleep(0)
    broker.release.set()
    report = await asyncio.wait_for(killing, 10)
    decision = json.loads((await asyncio.wait_for(deciding, 10)).decision_json)
    resting = [(o.client_order_id, o.status.value) for o in await broker.open_orders()]
    assert resting == [], (resting, report, decision)
    assert service.open_orders() == []
    legs = decision["order"]["legs"]
    assert len(legs) == 2 and all(leg["status"] != "accepted" for leg in legs), legs


async def test_a_plain_halt_keeps_the_stop_of_an_entry_that_filled_on_landing(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """A halt (not a kill) while a market bracket is on the wire: the entry fills as it lands,
    and its legs stay working: a halt blocks new risk, it never leaves a fill without its stop."""
    broker = HeldBrackets()
    service: GatewayService = await make_service(make_config(), broker=broker)
    deciding = asyncio.create_task(service.engine.submit_signal(bracket("bk-halt", {})))
    await broker.entered.wait()
    service.halt_trading("drill", by="test")
    broker.release.set()
    decision = json.loads((await asyncio.wait_for(deciding, 10)).decision_json)
    assert decision["order"]["status"] == "filled", decision
    resting = sorted(o.client_order_id.rsplit("-", 1)[-1] for o in await broker.open_orders())
    assert resting == ["sl", "tp"], (resting, decision)
    assert all(leg["status"] != "canceled" for leg in decision["order"]["legs"]), decision
