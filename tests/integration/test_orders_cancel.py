"""DELETE /v1/orders/{client_order_id}: journaled before the broker sees it, allowed in every
state, answered after the broker's answer, and ending with the broker's truth."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokers.errors import BrokerUnavailable
from brokers.simulated import Faults
from gateway.config import GatewayConfig
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, api_client, signal
from tests.fakes.replacing_sim import ReplacingSim


def rest(signal_id: str, **fields: Any) -> dict[str, Any]:
    """A buy limit below the market: it rests."""
    body = {"order_type": "limit", "limit_price": 190, "quantity": 5, **fields}
    return signal(signal_id, **body)


@pytest.fixture
def sim() -> ReplacingSim:
    return ReplacingSim(
        initial_cash=100000,
        quotes={"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)},
        tick_s=0.2,
    )


@pytest.fixture
async def gateway(
    config: GatewayConfig, make_service: Callable[..., Any], sim: ReplacingSim
) -> GatewayService:
    service: GatewayService = await make_service(config, broker=sim)
    return service


@pytest.fixture
async def http(gateway: GatewayService) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(gateway) as client:
        yield client


def journal_rows(path: Path, sql: str, *params: str) -> list[tuple[Any, ...]]:
    """Read the journal from another connection: what is committed, only."""
    reader = sqlite3.connect(path)
    try:
        return reader.execute(sql, params).fetchall()
    finally:
        reader.close()


async def test_a_resting_order_is_read_and_cancelled(
    gateway: GatewayService, http: httpx.AsyncClient
) -> None:
    coid = (await http.post("/v1/signals", json=rest("c-1"))).json()["order"]["client_order_id"]
    cancelled = await http.delete(f"/v1/orders/{coid}")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["client_order_id"] == coid and body["status"] == "canceled"
    assert body["strategy"] == "momentum" and body["signal_id"] == "c-1"
    assert (await http.get(f"/v1/orders/{coid}")).json()["status"] == "canceled"
    assert (await http.get("/v1/orders")).json() == []
    assert coid not in gateway.engine.book.orders  # its exposure is gone from the checks
    again = await http.delete(f"/v1/orders/{coid}")
    assert again.status_code == 409
    assert again.json()["code"] == "order_not_open"
    assert again.json()["order"]["status"] == "canceled"


async def test_an_unknown_or_other_strategys_order_is_404(gateway: GatewayService) -> None:
    async with api_client(gateway) as anyone:
        await anyone.post("/v1/signals", json=rest("o-1"))
        missing = await anyone.delete("/v1/orders/gw-nothing")
        assert missing.status_code == 404 and missing.json()["code"] == "order_not_found"
    async with api_client(gateway, MEANREV_TOKEN) as meanrev:
        other = await meanrev.delete(f"/v1/orders/{client_order_id('o-1')}")
        assert other.status_code == 404 and other.json()["code"] == "order_not_found"
    assert client_order_id("o-1") in gateway.engine.book.orders  # untouched


async def test_a_filled_order_is_not_open(http: httpx.AsyncClient) -> None:
    coid = (await http.post("/v1/signals", json=signal("m-1"))).json()["order"]["client_order_id"]
    refused = await http.delete(f"/v1/orders/{coid}")
    assert refused.status_code == 409 and refused.json()["code"] == "order_not_open"
    assert refused.json()["order"]["status"] == "filled"


async def test_a_cancel_is_allowed_while_halted(
    gateway: GatewayService, http: httpx.AsyncClient
) -> None:
    coid = (await http.post("/v1/signals", json=rest("h-1"))).json()["order"]["client_order_id"]
    assert (await http.post("/v1/halt", json={"reason": "drill"})).status_code == 200
    assert gateway.halt.is_halted
    cancelled = await http.delete(f"/v1/orders/{coid}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "canceled"


async def test_the_intent_is_committed_before_the_broker_hears_the_cancel(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    coid = (await http.post("/v1/signals", json=rest("i-1"))).json()["order"]["client_order_id"]
    seen: list[list[tuple[Any, ...]]] = []

    def check(method: str, asked: str) -> None:
        seen.append(
            journal_rows(
                gateway.journal.path,
                "SELECT detail FROM order_events WHERE client_order_id=? AND detail LIKE ?",
                asked,
                "cancel_requested%",
            )
        )

    sim.on_call = check
    assert (await http.delete(f"/v1/orders/{coid}")).status_code == 200
    assert len(seen) == 1 and len(seen[0]) == 1
    assert "api:strategy" in seen[0][0][0]  # who asked


async def test_a_cancel_that_races_a_fill_ends_filled_with_the_position(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    coid = (await http.post("/v1/signals", json=rest("r-1"))).json()["order"]["client_order_id"]
    sim.fill_on_cancel = True
    answer = await http.delete(f"/v1/orders/{coid}")
    assert answer.status_code == 409 and answer.json()["code"] == "order_not_open"
    order = answer.json()["order"]
    assert order["status"] == "filled" and order["filled_quantity"] == 5
    assert order["avg_fill_price"] == 190
    positions = (await http.get("/v1/positions")).json()
    assert [(p["symbol"], p["qty"], p["avg_price"]) for p in positions] == [("AAPL", 5, 190)]
    assert (await http.get(f"/v1/orders/{coid}")).json()["status"] == "filled"


async def test_a_cancel_taken_by_the_broker_that_fills_anyway_answers_the_truth(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    coid = (await http.post("/v1/signals", json=rest("t-1"))).json()["order"]["client_order_id"]
    sim.fill_after_cancel = True  # as Alpaca may: the cancel is accepted, the order fills
    answer = await http.delete(f"/v1/orders/{coid}")
    assert answer.status_code == 409 and answer.json()["code"] == "order_not_open"
    assert answer.json()["order"]["status"] == "filled"
    assert gateway.engine.book.position_qty("AAPL") == 5


async def test_an_unreachable_broker_is_503_and_only_the_intent_is_journaled(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    coid = (await http.post("/v1/signals", json=rest("u-1"))).json()["order"]["client_order_id"]

    def down(method: str, asked: str) -> None:
        raise BrokerUnavailable("link down")

    sim.on_call = down
    original = sim.get_order

    async def lookups_fail(asked: str) -> Any:
        raise BrokerUnavailable("link down")

    sim.get_order = lookups_fail  # type: ignore[method-assign]
    answer = await http.delete(f"/v1/orders/{coid}")
    assert answer.status_code == 503 and answer.json()["code"] == "broker_unavailable"
    sim.get_order = original  # type: ignore[method-assign]
    assert (await http.get(f"/v1/orders/{coid}")).json()["status"] == "accepted"
    assert coid in gateway.engine.book.orders
    statuses = journal_rows(
        gateway.journal.path,
        "SELECT status, detail FROM order_events WHERE client_order_id=? ORDER BY id",
        coid,
    )
    assert [s for s, _ in statuses] == ["accepted", "accepted"]
    assert statuses[-1][1].startswith("cancel_requested")


async def test_a_lost_cancel_answer_is_settled_by_a_look_up(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    coid = (await http.post("/v1/signals", json=rest("l-1"))).json()["order"]["client_order_id"]
    sim.lose_answers = 1  # cancelled at the broker; the answer never arrives
    answer = await http.delete(f"/v1/orders/{coid}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "canceled"
    assert coid not in gateway.engine.book.orders


async def test_an_order_of_unknown_fate_is_cancelled_at_the_broker(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    sim.set_faults(Faults(lose_submit_answers=1, fail_lookups_s=60))
    sim.mute = True  # its order events are lost too: only a look-up could tell
    decision = (await http.post("/v1/signals", json=rest("unk-1"))).json()
    assert decision["order"]["status"] == "pending_submit"  # it rests; nobody knows yet
    coid = decision["order"]["client_order_id"]
    assert coid in gateway.engine.unknown
    answer = await http.delete(f"/v1/orders/{coid}")  # look-ups still fail
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "pending_cancel"  # taken, not yet confirmed
    assert not sim._ledger.orders[coid].is_open  # the broker cancelled it
    assert coid not in gateway.engine.unknown


async def test_an_order_of_unknown_fate_not_at_the_broker_is_cancelled_when_found(
    gateway: GatewayService, http: httpx.AsyncClient, sim: ReplacingSim
) -> None:
    sim.set_faults(Faults(lose_submit_answers=1, fail_lookups_s=60))
    sim.mute = True
    coid = (await http.post("/v1/signals", json=rest("unk-2"))).json()["order"]["client_order_id"]
    sim.set_faults(Faults())
    found: list[str] = []
    gateway.engine.cancels._cancel_when_found = found.append
    del sim._ledger.orders[coid]  # as if the broker has not placed it (yet)
    answer = await http.delete(f"/v1/orders/{coid}")
    assert answer.status_code == 409 and answer.json()["code"] == "order_not_settled"
    assert found == [coid]
