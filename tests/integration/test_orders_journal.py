"""Nothing reaches the broker without its intent committed: a cancel or a replace whose intent
the journal cannot commit answers 503 journal_unavailable and the broker never hears of it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from gateway.config import GatewayConfig
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.conftest import api_client
from tests.fakes.replacing_sim import ReplacingSim
from tests.integration.test_orders_cancel import rest
from tests.journal_faults import install


async def test_an_intent_the_journal_cannot_commit_is_never_sent(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    sim = ReplacingSim(initial_cash=100000, quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
    service: GatewayService = await make_service(make_config(), broker=sim)
    calls: list[str] = []
    sim.on_call = lambda method, coid: calls.append(method)
    coid = client_order_id("base")
    async with api_client(service) as http:
        await http.post("/v1/signals", json=rest("base"))
        service.engine.flush_order_updates()
        service.journal.commit_now()
        install(service.journal, carrying=("INSERT INTO signals",))
        replace = await http.patch(f"/v1/orders/{coid}", json={"signal_id": "j-1", "quantity": 6})
        assert replace.status_code == 503 and replace.json()["code"] == "journal_unavailable"
        install(service.journal, carrying=("INSERT INTO order_events",), times=100)
        cancel = await http.delete(f"/v1/orders/{coid}")
        assert cancel.status_code == 503 and cancel.json()["code"] == "journal_unavailable"
    assert calls == []
    tracked = service.engine.book.orders[coid]
    assert (tracked.order.quantity, tracked.order.status.value) == (Decimal(5), "accepted")
    assert not service.engine.book.reservations  # the replace's hold went with it
