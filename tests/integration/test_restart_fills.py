"""A restart counts every fill once. The positions come from the broker, so whatever the
journal's orders filled while the gateway was down (or while their fate was unknown) is in them
already: those fills must not be added a second time when the orders' states arrive, and an
order that filled is never recorded as rejected.

The simulated account persists in the state dir, so it plays the broker that kept running while
the gateway was down (a test moves its market in between)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from brokers.base import OrderRequest
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Decision, Signal
from gateway.pipeline.decisions import accepted, intent_summary
from gateway.service import GatewayService
from gateway.store.journal import Journal
from tests.conftest import TEST_ENV, api_client, signal
from tests.integration.test_unknown_orders import LookupsFail
from tests.journal_faults import DECISION, install

QUOTES = {"AAPL": (199.95, 200.05)}


async def _broker_kept_running(config: GatewayConfig) -> SimulatedBroker:
    path = config.brokers.simulated.state_path(config.gateway.state_dir)
    broker = SimulatedBroker(quotes=QUOTES, state_path=path)
    await broker.connect()
    return broker


def _assert_counted_once(service: GatewayService, qty: int, halted_by: str | None = None) -> None:
    assert service.engine.book.position_qty("AAPL") == qty
    reconciliation = service.status()["reconciliation"]
    assert reconciliation["positions"] == [], reconciliation
    halt = service.halt.current
    assert (halt and halt.trigger.value) == halted_by, halt


async def test_an_order_that_filled_while_the_gateway_was_down_counts_once(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first: GatewayService = await make_service(config)
    resting = signal("rest", order_type="limit", limit_price=199, time_in_force="gtc")
    async with api_client(first) as client:
        assert (await client.post("/v1/signals", json=resting)).json()["order"]["status"] == (
            "accepted"
        )
    await first.stop()
    broker = await _broker_kept_running(config)
    _, filled = broker.set_quote("AAPL", 198.9, 199.0)  # the market came down to the bid
    assert [o.status.value for o in filled] == ["filled"]
    await broker.close()

    again: GatewayService = await make_service(config)
    _assert_counted_once(again, 10)
    await again.reconcile()  # and again later: still nothing to correct
    _assert_counted_once(again, 10)
    assert [o.status for o in again.journal.orders()] == ["filled"]


async def test_a_filled_order_whose_decision_was_lost_is_accepted_after_a_restart(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first = GatewayService(config, environ=TEST_ENV)
    await first.start()
    install(first.journal, carrying=(DECISION,))  # the decision's commit fails, once
    async with api_client(first) as client:
        assert (await client.post("/v1/signals", json=signal("lost"))).status_code == 503
    # The broker's fill event reaches the journal once it writes again; no replay came.
    assert first.journal.probe()
    for _ in range(200):
        if [o.status for o in first.journal.orders()] == ["filled"]:
            break
        await asyncio.sleep(0.01)
    assert [o.status for o in first.journal.orders()] == ["filled"]
    await first.stop()

    again: GatewayService = await make_service(config)
    stored = again.journal.signal("lost")
    assert stored is not None and stored.decision is not None
    decision = Decision.model_validate_json(stored.decision)
    assert decision.decision.value == "accepted", decision
    assert decision.order is not None and decision.order.status == "filled"
    _assert_counted_once(again, 10, halted_by="journal_failure")  # the outage's halt stays
    sim = again.broker
    assert isinstance(sim, SimulatedBroker)
    assert max(sim.submit_counts.values()) == 1


def _journal_unknown(config: GatewayConfig, order: OrderRequest, *, decided: bool) -> None:
    """The journal as a crash left it: an intent (and, if ``decided``, its accepted decision of
    unknown fate), with no broker answer."""
    journal = Journal(config.gateway.state_dir / "journal.sqlite3")
    body = Signal(**signal("x", quantity=order.quantity)).model_dump_json()
    journal.record_intent(
        signal_id="x",
        body_hash="h",
        body=body,
        strategy="momentum",
        symbol="AAPL",
        order=order,
        valued_at="200.05",
    )
    if decided:
        summary = intent_summary(order, Decimal("200.05"))
        decision = accepted("x", summary, Decision(signal_id="x", decision="accepted").risk)
        journal.record_decision("x", decision.model_dump_json(), "accepted")
    journal.close()


async def _restart_with_failing_look_ups(
    config: GatewayConfig, make_service: Callable[..., Any], *, decided: bool
) -> None:
    order = OrderRequest(client_order_id="gw-x", symbol="AAPL", side="buy", quantity=10)
    _journal_unknown(config, order, decided=decided)
    broker = await _broker_kept_running(config)
    await broker.submit(order)  # it landed and filled; the gateway never heard
    await broker.close()

    path = config.brokers.simulated.state_path(config.gateway.state_dir)
    lookups_fail = LookupsFail(quotes=QUOTES, tick_s=0.2, state_path=path)
    service: GatewayService = await make_service(config, broker=lookups_fail)
    assert service.engine.unknown.pending == ["gw-x"]
    lookups_fail.failing = False
    await service.engine.unknown.look_up_all()  # settled: it filled (before the restart)
    assert service.engine.unknown.pending == []
    assert service.engine.book.reservations == {}
    await service.reconcile()
    _assert_counted_once(service, 10)


async def test_an_undecided_order_of_unknown_fate_that_filled_counts_once(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    await _restart_with_failing_look_ups(make_config(), make_service, decided=False)


async def test_a_decided_order_of_unknown_fate_that_filled_counts_once(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    await _restart_with_failing_look_ups(make_config(), make_service, decided=True)
