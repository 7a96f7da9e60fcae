"""Fills whose events never reached the journal are recovered from the broker at start.

A market order fills at submit: its decision (status filled) is journaled at once, its fill
row and ``fill`` event only when the broker's event is consumed. A gateway killed in between
(here: the consumer stopped before the signal, so the event dies with the process) must, after
a restart, still show that fill in /v1/fills and on the event stream, with the broker's own
fill id, quantity and price, counted once in the position. The same for a resting order that
filled while the gateway was down. What the broker cannot tell is reported, never made up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from brokers.base import ConnectionEvent
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from gateway.store.events import EventLog
from tests.conftest import api_client, signal

QUOTES = {"AAPL": (199.95, 200.05)}


async def _lose_fill_events(service: GatewayService) -> None:
    """The broker's events are no longer consumed: those of what follows are lost with it."""
    consumer = service.engine._tasks[0]
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer


def _stream_fills(service: GatewayService) -> list[dict[str, Any]]:
    log = EventLog(service.journal.path)
    try:
        events = log.events_after(0, 100_000)
    finally:
        log.close()
    return [json.loads(e.data) for e in events if e.type == "fill"]


async def _api_fills(service: GatewayService) -> list[dict[str, Any]]:
    async with api_client(service) as client:
        answer = await client.get("/v1/fills")
        assert answer.status_code == 200, answer.text
        fills: list[dict[str, Any]] = answer.json()
        return fills


def _adds_up(service: GatewayService, fills: list[dict[str, Any]]) -> None:
    """Each order's filled quantity is its fills' sum; the fills add up to the position."""
    for stored in service.journal.orders():
        mine = [
            Decimal(str(f["quantity"]))
            for f in fills
            if f["client_order_id"] == stored.client_order_id
        ]
        assert sum(mine, Decimal(0)) == Decimal(stored.filled_quantity), stored
    signed = sum(
        (Decimal(str(f["quantity"])) * (1 if f["side"] == "buy" else -1) for f in fills),
        Decimal(0),
    )
    assert signed == service.engine.book.position_qty("AAPL")


async def test_a_fill_whose_event_was_lost_at_a_kill_is_recovered_at_restart(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first: GatewayService = await make_service(config)
    await _lose_fill_events(first)
    async with api_client(first) as client:
        decision = (await client.post("/v1/signals", json=signal("lost-fill"))).json()
    assert decision["order"]["status"] == "filled"
    coid = decision["order"]["client_order_id"]
    assert first.journal.fills() == []  # the bug: filled, and no fill anywhere
    await first.stop()

    again: GatewayService = await make_service(config)
    fills = await _api_fills(again)
    assert [(f["fill_id"], f["client_order_id"], f["quantity"], f["price"]) for f in fills] == [
        ("sim-1-1", coid, 10, 200.05)
    ]
    assert fills[0]["strategy"] == "momentum" and fills[0]["signal_id"] == "lost-fill"
    assert [f["fill_id"] for f in _stream_fills(again)] == ["sim-1-1"]
    _adds_up(again, fills)
    assert again.engine.book.position_qty("AAPL") == 10  # counted once: not applied again
    assert again.status()["reconciliation"]["positions"] == []
    assert again.journal.events("fill_gap") == []

    await again.stop()  # asking again at the next start adds nothing
    third: GatewayService = await make_service(config)
    assert len(await _api_fills(third)) == 1
    assert len(_stream_fills(third)) == 1


async def test_a_resting_order_that_filled_while_the_gateway_was_down_shows_its_fill(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first: GatewayService = await make_service(config)
    resting = signal("rest", order_type="limit", limit_price=199, time_in_force="gtc")
    async with api_client(first) as client:
        await client.post("/v1/signals", json=resting)
    await first.stop()
    broker = SimulatedBroker(
        quotes=QUOTES, state_path=config.brokers.simulated.state_path(config.gateway.state_dir)
    )
    await broker.connect()
    broker.set_quote("AAPL", 198.9, 199.0)  # the market came down to the limit meanwhile
    await broker.close()

    again: GatewayService = await make_service(config)
    fills = await _api_fills(again)
    assert [(f["quantity"], f["price"], f["signal_id"]) for f in fills] == [(10, 199, "rest")]
    assert [f["fill_id"] for f in _stream_fills(again)] == [fills[0]["fill_id"]]
    _adds_up(again, fills)
    assert [o.status for o in again.journal.orders()] == ["filled"]


async def test_a_fill_the_broker_cannot_tell_is_reported_and_not_made_up(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first: GatewayService = await make_service(config)
    await _lose_fill_events(first)
    async with api_client(first) as client:
        await client.post("/v1/signals", json=signal("untold"))
    await first.stop()
    sim_file = config.brokers.simulated.state_path(config.gateway.state_dir)
    assert sim_file is not None
    with contextlib.closing(sqlite3.connect(sim_file)) as db:
        db.execute("DELETE FROM executions")  # as a file from before executions were kept
        db.commit()

    again: GatewayService = await make_service(config)
    assert await _api_fills(again) == []
    assert _stream_fills(again) == []
    [gap] = again.journal.events("fill_gap")
    assert gap["missing_quantity"] == "10" and gap["symbol"] == "AAPL"
    assert gap["client_order_id"] == again.journal.orders()[0].client_order_id
    assert again.engine.book.position_qty("AAPL") == 10  # the position is the broker's, as ever


async def test_a_fill_lost_with_the_broker_link_is_recovered_after_the_reconnect(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    service: GatewayService = await make_service(config)
    await _lose_fill_events(service)
    async with api_client(service) as client:
        await client.post("/v1/signals", json=signal("link-lost"))
    sim = service.broker
    assert isinstance(sim, SimulatedBroker)
    while not sim._events.empty():  # the events the lost link never delivered
        sim._events.get_nowait()
    service.engine._tasks[0] = asyncio.create_task(service.engine.events.consume())
    sim._events.put_nowait(ConnectionEvent(connected=True, reason="link back"))
    for _ in range(200):
        if service.journal.fills():
            break
        await asyncio.sleep(0.01)
    assert [(f.fill_id, f.quantity) for f in service.journal.fills()] == [("sim-1-1", Decimal(10))]
    assert [f["fill_id"] for f in _stream_fills(service)] == ["sim-1-1"]
