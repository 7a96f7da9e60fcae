"""PATCH /v1/orders/{client_order_id}: a replace is decided like a signal (idempotent on its own
signal_id, halt and reduce-only gates, priced from the live quote, every pre-trade check
counting only the exposure it adds), journaled before the broker, and a refusal by the broker
leaves the original order as it was."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.errors import BrokerUnavailable
from gateway.config import GatewayConfig
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, MEANREV_TOKEN, api_client, signal
from tests.fakes.replacing_sim import ReplacingSim
from tests.integration.test_orders_cancel import journal_rows, rest

COID = client_order_id("base")


def sim_broker() -> ReplacingSim:
    return ReplacingSim(initial_cash=100000, quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)


@pytest.fixture
def sim() -> ReplacingSim:
    return sim_broker()


async def start(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    sim: ReplacingSim,
    risk: dict[str, Any] | None = None,
) -> tuple[GatewayService, httpx.AsyncClient]:
    service: GatewayService = await make_service(make_config(risk=risk), broker=sim)
    http = api_client(service)
    placed = await http.post("/v1/signals", json=rest("base"))  # 5 AAPL at 190, resting
    assert placed.json()["order"]["status"] == "accepted"
    return service, http


@pytest.fixture
async def setup(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], sim: ReplacingSim
) -> AsyncIterator[tuple[GatewayService, httpx.AsyncClient]]:
    service, http = await start(make_config, make_service, sim)
    yield service, http
    await http.aclose()


async def patch(http: httpx.AsyncClient, signal_id: str, **change: Any) -> httpx.Response:
    return await http.patch(f"/v1/orders/{COID}", json={"signal_id": signal_id, **change})


async def order_now(http: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await http.get(f"/v1/orders/{COID}")).json())


async def test_a_resting_limit_is_moved(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    service.engine.flush_order_updates()
    service.journal.commit_now()
    ((last,),) = journal_rows(service.journal.path, "SELECT MAX(seq) FROM stream")
    answer = await patch(http, "mv-1", quantity=10, limit_price=191)
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["signal_id"] == "mv-1" and decision["decision"] == "accepted"
    order = decision["order"]
    assert order["client_order_id"] == COID
    assert (order["quantity"], order["price"], order["notional"]) == (10, 191, 1910)
    now = await order_now(http)
    assert (now["quantity"], now["limit_price"], now["status"]) == (10, 191, "accepted")
    assert now["signal_id"] == "base"  # the order keeps its handle and its origin
    held = sim._ledger.orders[COID]
    assert (held.quantity, held.limit_price) == (Decimal(10), Decimal(191))
    assert len([o for o in await sim.open_orders()]) == 1  # one live order, never two
    tracked = service.engine.book.orders[COID]
    assert (tracked.order.quantity, tracked.price) == (Decimal(10), Decimal(191))
    assert service.engine.book.open_buy_notional() == Decimal(1910)
    # The decision event and the order event, written together, are in the event log.
    rows = journal_rows(
        service.journal.path, "SELECT type, payload FROM stream WHERE seq > ? ORDER BY seq", last
    )
    assert [kind for kind, _ in rows[:2]] == ["decision", "order"]
    assert json.loads(rows[0][1]) == decision
    assert (json.loads(rows[1][1])["quantity"], json.loads(rows[1][1])["limit_price"]) == (10, 191)


async def test_a_replay_answers_the_first_decision_and_a_reuse_conflicts(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    _, http = setup
    first = await patch(http, "id-1", limit_price=189)
    again = await patch(http, "id-1", limit_price=189)
    assert again.status_code == 200 and again.content == first.content
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = await patch(http, "id-1", limit_price=188)
    assert other.status_code == 409 and other.json()["code"] == "signal_id_conflict"
    used = await patch(http, "base", limit_price=188)  # the signal's own id
    assert used.status_code == 409 and used.json()["code"] == "signal_id_conflict"
    reused = await http.post("/v1/signals", json=signal("id-1"))
    assert reused.status_code == 409
    assert len(sim.replaces) == 1
    assert (await order_now(http))["limit_price"] == 189


async def test_duplicate_replaces_racing_reach_the_broker_once(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    _, http = setup
    answers = await asyncio.gather(*(patch(http, "race-1", quantity=7) for _ in range(5)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    assert len(sim.replaces) == 1


async def test_a_replace_is_blocked_while_halted(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    _, http = setup
    await http.post("/v1/halt", json={"reason": "drill"})
    decision = (await patch(http, "h-1", quantity=6)).json()
    assert decision["decision"] == "blocked"
    assert [r["code"] for r in decision["reasons"]] == ["halted"]
    assert sim.replaces == [] and (await order_now(http))["quantity"] == 5


async def test_reduce_only_blocks_a_replace_that_adds_exposure_only(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    service.engine.monitor.reduce_only = "daily_loss 3% >= limit 2%"
    grows = (await patch(http, "ro-1", limit_price=191)).json()
    assert grows["decision"] == "blocked"
    assert [r["code"] for r in grows["reasons"]] == ["reduce_only"]
    shrinks = (await patch(http, "ro-2", quantity=3, limit_price=189)).json()
    assert shrinks["decision"] == "accepted", shrinks
    assert len(sim.replaces) == 1


@pytest.mark.parametrize(
    ("risk", "change", "code"),
    [
        ({"pre_trade": {"max_order_notional": 5000}}, {"quantity": 30}, "max_order_notional"),
        ({"pre_trade": {"max_order_quantity": 20}}, {"quantity": 21}, "max_order_quantity"),
        ({}, {"limit_price": 211}, "price_collar"),
        ({}, {"quantity": 400}, "position_risk"),
    ],
)
async def test_a_replace_meets_every_check_a_new_signal_would(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    sim: ReplacingSim,
    risk: dict[str, Any],
    change: dict[str, Any],
    code: str,
) -> None:
    service, http = await start(make_config, make_service, sim, risk)
    try:
        decision = (await patch(http, "chk-1", **change)).json()
        assert decision["decision"] == "rejected"
        assert code in [r["code"] for r in decision["reasons"]]
        assert sim.replaces == []
        assert (await order_now(http))["quantity"] == 5
        assert service.engine.book.open_buy_notional() == Decimal(950)
    finally:
        await http.aclose()


async def test_heat_counts_only_the_exposure_a_replace_adds(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], sim: ReplacingSim
) -> None:
    # 5 x 190 = 950 rests (heat 0.0285%); the limit, 0.05%, admits 1,666 of exposure.
    risk = {"risk_management": {"max_portfolio_heat": 0.0005}}
    _, http = await start(make_config, make_service, sim, risk)
    try:
        grown = (await patch(http, "heat-1", quantity=8)).json()  # 1,520: fits, alone
        assert grown["decision"] == "accepted", grown
        too_much = (await patch(http, "heat-2", quantity=9)).json()  # 1,710: does not
        assert [r["code"] for r in too_much["reasons"]] == ["portfolio_heat"]
        assert (await order_now(http))["quantity"] == 8
    finally:
        await http.aclose()


async def test_a_stale_quote_rejects_a_replace(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    old = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
    async with api_client(service, ADMIN_TOKEN) as admin:
        quote = {"symbol": "AAPL", "bid": 199.95, "ask": 200.05, "ts": old}
        assert (await admin.post("/v1/sim/quotes", json=[quote])).status_code == 200
    decision = (await patch(http, "st-1", quantity=6)).json()
    assert [r["code"] for r in decision["reasons"]] == ["quote_stale"]
    assert sim.replaces == []


async def test_a_replace_the_broker_refuses_leaves_the_original(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    before = await order_now(http)
    sim.refuse_replaces = "order cannot be replaced now"
    decision = (await patch(http, "bx-1", quantity=6, limit_price=191)).json()
    assert decision["decision"] == "rejected"
    assert [r["code"] for r in decision["reasons"]] == ["broker_rejected"]
    assert "cannot be replaced now" in decision["reasons"][0]["message"]
    after = await order_now(http)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    tracked = service.engine.book.orders[COID]
    assert (tracked.order.quantity, tracked.price) == (Decimal(5), Decimal(190))
    assert service.engine.book.open_buy_notional() == Decimal(950)
    assert not service.engine.book.reservations


async def test_the_intent_is_committed_before_the_broker_hears_the_replace(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    seen: list[list[tuple[Any, ...]]] = []

    def check(method: str, coid: str) -> None:
        seen.append(
            journal_rows(
                service.journal.path,
                "SELECT client_order_id, decision FROM signals WHERE signal_id=?",
                "in-1",
            )
        )

    sim.on_call = check
    assert (await patch(http, "in-1", quantity=6)).json()["decision"] == "accepted"
    assert seen == [[(COID, None)]]  # the intent, committed, undecided


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"stop_price": 180}, 422, "replace_invalid"),
        ({"quantity": 5, "limit_price": 190}, 422, "replace_invalid"),
        ({}, 422, "invalid_request"),
        ({"quantity": 0}, 422, "invalid_request"),
        ({"limit_price": 1e-400}, 422, "invalid_request"),
        ({"side": "sell"}, 422, "invalid_request"),
    ],
)
async def test_bad_input_reaches_neither_the_broker_nor_the_journal(
    setup: tuple[GatewayService, httpx.AsyncClient],
    sim: ReplacingSim,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    service, http = setup
    answer = await patch(http, "bad-1", **change)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert sim.replaces == []
    assert service.journal.signal("bad-1") is None
    fine = await patch(http, "bad-1", quantity=6)  # the id was never used
    assert fine.json()["decision"] == "accepted"


async def test_a_final_order_is_not_open_and_an_unknown_one_is_404(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    filled = (await http.post("/v1/signals", json=signal("mkt"))).json()["order"]
    answer = await http.patch(
        f"/v1/orders/{filled['client_order_id']}", json={"signal_id": "f-1", "quantity": 2}
    )
    assert answer.status_code == 409 and answer.json()["code"] == "order_not_open"
    assert answer.json()["order"]["status"] == "filled"
    missing = await http.patch("/v1/orders/gw-none", json={"signal_id": "f-2", "quantity": 2})
    assert missing.status_code == 404 and missing.json()["code"] == "order_not_found"
    async with api_client(service, MEANREV_TOKEN) as meanrev:
        other = await patch(meanrev, "f-3", quantity=6)
        assert other.status_code == 404 and other.json()["code"] == "order_not_found"
    assert sim.replaces == []
    assert all(service.journal.signal(s) is None for s in ("f-1", "f-2", "f-3"))


async def test_a_replace_decision_is_logged_with_the_order_it_changes(
    setup: tuple[GatewayService, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    _, http = setup
    caplog.set_level(logging.INFO, logger="gateway.pipeline.engine")
    await patch(http, "log-1", quantity=6)
    await patch(http, "log-2", limit_price=500)  # refused by the collar
    logged = [r for r in caplog.records if getattr(r, "signal_id", "").startswith("log-")]
    assert [(r.signal_id, r.client_order_id, r.strategy) for r in logged] == [  # type: ignore[attr-defined]
        ("log-1", COID, "momentum"),
        ("log-2", COID, "momentum"),
    ]


async def test_a_lost_replace_answer_is_settled_by_a_look_up(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    sim.lose_answers = 1  # replaced at the broker; the answer never arrives
    decision = (await patch(http, "lost-1", quantity=7)).json()
    assert decision["decision"] == "accepted", decision
    assert decision["order"]["quantity"] == 7
    assert (await order_now(http))["quantity"] == 7
    assert len(sim.replaces) == 1  # not sent twice
    assert service.engine.book.open_buy_notional() == Decimal(7 * 190)


async def test_a_replace_on_the_wire_holds_what_it_may_add(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], sim: ReplacingSim
) -> None:
    # Heat limit 0.06% admits 2,000 of exposure; 5 x 190 = 950 rests.
    risk = {"risk_management": {"max_portfolio_heat": 0.0006}}
    _, http = await start(make_config, make_service, sim, risk)
    one_more = {"order_type": "limit", "limit_price": 190, "quantity": 1}
    try:
        sim.hold = asyncio.Event()
        moving = asyncio.create_task(patch(http, "wire-1", quantity=8))  # 1,520 once replaced
        await asyncio.wait_for(sim.arrived.wait(), 10)
        # On the wire, the replace holds its new order beside the original: 950 + 1,520.
        during = (await http.post("/v1/signals", json=signal("w-1", **one_more))).json()
        assert [r["code"] for r in during["reasons"]] == ["portfolio_heat"]
        sim.hold.set()
        assert (await moving).json()["decision"] == "accepted"
        after = (await http.post("/v1/signals", json=signal("w-2", **one_more))).json()
        assert after["decision"] == "accepted", after  # 1,520 + 190 fits
    finally:
        await http.aclose()


async def test_a_lost_replace_answer_without_a_look_up_says_so_and_the_order_follows(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    service, http = setup
    sim.lose_answers = 1  # replaced at the broker; the answer never arrives

    async def lookups_fail(asked: str) -> Any:
        raise BrokerUnavailable("link down")

    sim.get_order = lookups_fail  # type: ignore[method-assign]
    decision = (await patch(http, "unk-1", quantity=7)).json()
    assert decision["decision"] == "rejected"
    assert [r["code"] for r in decision["reasons"]] == ["broker_unavailable"]
    assert "could not be looked up" in decision["reasons"][0]["message"]
    # The broker's own update of the replaced order reaches the book and the journal.
    for _ in range(50):
        if (await order_now(http))["quantity"] == 7:
            break
        await asyncio.sleep(0.02)
    assert (await order_now(http))["quantity"] == 7
    assert service.engine.book.orders[COID].order.quantity == Decimal(7)
    assert not service.engine.book.reservations


async def test_a_brackets_leg_moves_its_price_but_never_its_quantity(
    setup: tuple[GatewayService, httpx.AsyncClient], sim: ReplacingSim
) -> None:
    _, http = setup
    entry = signal("br-1", quantity=2, stop_loss_price=180)
    decision = (await http.post("/v1/signals", json=entry)).json()
    assert decision["decision"] == "accepted", decision
    [leg] = decision["order"]["legs"]
    url = f"/v1/orders/{leg['client_order_id']}"
    answer = await http.patch(url, json={"signal_id": "br-2", "quantity": 1})
    assert answer.status_code == 422 and answer.json()["code"] == "replace_invalid"
    assert "follow their position" in answer.json()["message"]
    answer = await http.patch(url, json={"signal_id": "br-3", "limit_price": 170})
    assert answer.status_code == 422 and answer.json()["code"] == "replace_invalid"
    assert sim.replaces == []
    moved = (await http.patch(url, json={"signal_id": "br-4", "stop_price": 185})).json()
    assert moved["decision"] == "accepted", moved
    assert len(sim.replaces) == 1
