"""The journal is the event log: every decision, order change, fill and state change is a
``stream`` row written with the change itself, in commit order."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx

from gateway.service import GatewayService
from tests.conftest import signal


def stream_rows(service: GatewayService) -> list[tuple[int, str, str | None, dict[str, object]]]:
    service.journal.commit_now()
    db = sqlite3.connect(service.journal.path)
    try:
        rows = db.execute("SELECT seq, type, strategy, payload FROM stream ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(seq, kind, strategy, json.loads(payload)) for seq, kind, strategy, payload in rows]


async def test_a_filled_signal_leaves_its_decision_order_and_fill_events(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    body = (await client.post("/v1/signals", json=signal("ev-1", quantity=3))).json()
    coid = body["order"]["client_order_id"]
    for _ in range(100):  # the broker's fill event arrives on its own task
        await asyncio.sleep(0.01)
        service.engine.flush_order_updates()
        if any(kind == "fill" for _, kind, _, _ in stream_rows(service)):
            break
    rows = stream_rows(service)
    kinds = [kind for _, kind, _, _ in rows]
    assert kinds[0] == "state"  # published once at start
    assert rows[0][3]["state"] == "active" and rows[0][3]["halt"] is None
    assert kinds.count("decision") == 1 and kinds.count("fill") == 1
    decision = next(p for _, k, _, p in rows if k == "decision")
    assert decision == body
    fill = next((s, p) for _, k, s, p in rows if k == "fill")
    assert fill[0] == "momentum" and fill[1]["client_order_id"] == coid
    assert fill[1]["quantity"] == 3.0 and fill[1]["signal_id"] == "ev-1"
    orders = [p for _, k, _, p in rows if k == "order"]
    assert orders and orders[-1]["status"] == "filled" and orders[-1]["strategy"] == "momentum"
    assert orders[-1]["signal_id"] == "ev-1" and orders[-1]["created_at"]
    seqs = [seq for seq, _, _, _ in rows]
    assert seqs == sorted(set(seqs))


async def test_a_refusal_and_a_halt_are_events(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    await client.post("/v1/halt", json={"reason": "lunch"})
    body = (await client.post("/v1/signals", json=signal("ev-2"))).json()
    assert body["decision"] == "blocked"
    rows = stream_rows(service)
    states = [p for _, k, _, p in rows if k == "state"]
    assert states[-1]["state"] == "halted"
    halt = states[-1]["halt"]
    assert isinstance(halt, dict) and halt["reason"] == "lunch" and halt["trigger"] == "manual"
    assert [p for _, k, _, p in rows if k == "decision"] == [body]


async def test_a_fill_reported_twice_is_one_row_and_one_event(service: GatewayService) -> None:
    from datetime import UTC, datetime

    from brokers.base import BrokerOrder, Fill

    order = BrokerOrder(
        client_order_id="ext-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=2,
        filled_quantity=2,
        status="filled",
        avg_fill_price=200,
    )
    fill = Fill(
        client_order_id="ext-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=2,
        price=200,
        ts=datetime.now(UTC),
        fill_id="exec-1",
    )
    service.journal.record_order_updates([(order, fill, None)])
    service.journal.record_order_updates([(order, fill, None)])
    rows = stream_rows(service)
    assert [p["fill_id"] for _, k, _, p in rows if k == "fill"] == ["exec-1"]
    assert len(service.journal.fills()) == 1


async def test_a_state_event_comes_at_a_change_only(
    service: GatewayService, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await service.risk_sweep()  # nothing changed: no state event
    states = [p for _, k, _, p in stream_rows(service) if k == "state"]
    assert [s["state"] for s in states] == ["active"]
    await client.post("/v1/halt", json={"reason": "once"})
    await client.post("/v1/halt", json={"reason": "twice"})  # the first halt stays
    await service.risk_sweep()
    states = [p for _, k, _, p in stream_rows(service) if k == "state"]
    assert [s["state"] for s in states] == ["active", "halted"]
