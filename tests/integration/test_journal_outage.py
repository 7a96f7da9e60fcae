"""The journal cannot write (disk full): the gateway halts cleanly, sends nothing without its
intent, leaks no reservation, answers halt and kill, and resumes once writes succeed again.

The journal's size is capped with ``PRAGMA max_page_count``, which makes SQLite answer
SQLITE_FULL exactly as a full disk does (tests/e2e/test_full_disk.py does it with a real full
tmpfs and a real process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, api_client, signal
from tests.journal_backends import Backend, fill_up, free
from tests.journal_faults import DECISION, INTENT, install, install_statement_fails


def _cap(service: GatewayService) -> None:
    fill_up(service.journal)


def _uncap(service: GatewayService) -> None:
    free(service.journal)


async def _until_journal_refuses(client: httpx.AsyncClient) -> list[httpx.Response]:
    answers = []
    for n in range(400):
        body = signal(f"full-{n}", quantity=1, strategy="s" * 60)
        answer = await client.post("/v1/signals", json=body)
        answers.append(answer)
        if answer.status_code == 503:
            return answers
    raise AssertionError("the capped journal never refused a write")


async def test_a_full_journal_halts_cleanly_and_resumes_when_writes_succeed(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    config = make_config(
        risk={
            "emergency": {"resume_cooldown_s": 0},
            "pre_trade": {"max_orders_per_second": 100000},
        }
    )
    service: GatewayService = await make_service(
        config, **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        assert (await client.post("/v1/signals", json=signal("before"))).json()[
            "decision"
        ] == "accepted"
        heat_before = (await client.get("/v1/status")).json()["risk"]["portfolio_heat"]
        _cap(service)
        answers = await _until_journal_refuses(client)
        refused = answers[-1].json()
        assert refused["code"] == "journal_unavailable"
        await asyncio.sleep(0)  # the halt comes on the loop's next turn
        status = (await client.get("/v1/status")).json()
        assert status["state"] == "halted"
        assert status["halt"]["trigger"] == "journal_failure"
        assert status["journal"]["writable"] is False
        metrics = (await client.get("/metrics")).text
        assert "gateway_journal_writable 0.0" in metrics
        # No reservation leaked: heat is what the accepted orders make, nothing more.
        assert service.engine.book.reservations == {}
        accepted = [a for a in answers if a.status_code == 200]
        assert status["risk"]["portfolio_heat"] >= heat_before
        if not accepted:
            assert status["risk"]["portfolio_heat"] == heat_before
        # Nothing reached the broker without its intent in the journal.
        journaled = {o.client_order_id for o in service.journal.orders()}
        assert set(broker.submit_counts) <= journaled
        # Stopping is always answered, disk full or not.
        halt = await client.post("/v1/halt", json={"reason": "operator saw the disk alert"})
        assert halt.status_code == 200 and halt.json()["state"] == "halted"
        kill = await client.post("/v1/kill", json={"reason": "belt and braces"})
        assert kill.status_code == 200
        # A signal now is refused without a 500.
        again = await client.post("/v1/signals", json=signal("during", quantity=1))
        assert again.status_code in (200, 503)
        if again.status_code == 200:
            assert again.json()["decision"] == "blocked"
        # Resume needs a journal that writes: a large event cannot be written while full.
        service.journal.record_event("operator_note", {"text": "x" * 50_000})
        assert service.journal.backlog > 0
        refused_resume = await admin.post("/v1/resume", json={})
        assert refused_resume.status_code == 409
        assert refused_resume.json()["code"] == "journal_unavailable"
        _uncap(service)
        resumed = await admin.post("/v1/resume", json={})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["state"] == "active"
        assert resumed.json()["journal"]["writable"] is True
        after = await client.post("/v1/signals", json=signal("after", quantity=1))
        assert after.json()["decision"] == "accepted"
        # The halt events kept in memory during the outage reached the journal.
        kinds = [e["kind"] for e in service.journal.events(limit=100)]
        assert {"halt.halt", "kill_switch", "operator_note"} <= set(kinds)
        assert service.journal.backlog == 0


async def test_an_intent_that_cannot_be_committed_is_never_sent(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    install(service.journal, carrying=(INTENT,))
    async with api_client(service) as client:
        answer = await client.post("/v1/signals", json=signal("lost-intent"))
        assert answer.status_code == 503
        assert answer.json()["code"] == "journal_unavailable"
        assert broker.submit_counts == {}  # the broker never saw it
        assert service.engine.book.reservations == {}  # and its exposure is not held
        await asyncio.sleep(0)
        assert service.halt.current is not None
        assert service.halt.current.trigger.value == "journal_failure"


async def test_a_bracket_whose_intent_cannot_be_committed_is_never_sent(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    install(service.journal, carrying=(INTENT,))
    async with api_client(service) as client:
        body = signal("lost-bracket", stop_loss_price=190, take_profit_price=220)
        answer = await client.post("/v1/signals", json=body)
        assert answer.status_code == 503
        assert answer.json()["code"] == "journal_unavailable"
    assert broker.submit_counts == {}  # neither the entry nor a leg reached the broker
    assert await broker.open_orders() == []
    assert service.engine.book.reservations == {}
    assert service.journal.orders() == []  # no leg left behind without its entry


async def test_a_decision_that_cannot_be_committed_is_answered_once_it_is(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    # The intent's commit succeeds, the decision's fails: the order is at the broker.
    install(service.journal, carrying=(DECISION,))
    async with api_client(service) as client:
        first = await client.post("/v1/signals", json=signal("lost-decision"))
        assert first.status_code == 503
        assert list(broker.submit_counts.values()) == [1]  # the order is at the broker
        assert service.journal.signal("lost-decision").decision is None  # type: ignore[union-attr]
        assert service.journal.probe()
        replay = await client.post("/v1/signals", json=signal("lost-decision"))
        assert replay.status_code == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["decision"] == "accepted"
        stored = service.journal.signal("lost-decision")
        assert stored is not None and stored.decision == replay.text
        assert max(broker.submit_counts.values()) == 1  # never sent twice


async def test_a_refusal_after_the_intent_that_cannot_be_committed_is_answered_once_it_is(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_faults(Faults(reject_submits=1))
    # The intent is committed, the broker says no, and the decision's commit fails: its
    # signal row exists without a decision. A replay must answer, not trip over that row.
    install(service.journal, carrying=(DECISION,))
    async with api_client(service) as client:
        first = await client.post("/v1/signals", json=signal("refused-then-lost"))
        assert first.status_code == 503
        assert service.journal.probe()
        replay = await client.post("/v1/signals", json=signal("refused-then-lost"))
        assert replay.status_code == 200, replay.text
        assert replay.json()["decision"] == "rejected"
        assert [r["code"] for r in replay.json()["reasons"]] == ["broker_rejected"]
        stored = service.journal.signal("refused-then-lost")
        assert stored is not None and stored.decision == replay.text
        assert max(broker.submit_counts.values()) == 1  # never sent again


async def test_a_decision_journaled_late_never_rolls_its_order_back(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    backend: Backend,
    tmp_path: Path,
) -> None:
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    install(service.journal, carrying=(DECISION,))
    resting = signal("late", order_type="limit", limit_price=199, time_in_force="gtc")
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        assert (await client.post("/v1/signals", json=resting)).status_code == 503
        assert service.journal.probe()
        # The order fills while its decision waits to be journaled: the fill is journaled.
        moved = await admin.post(
            "/v1/sim/quotes", json=[{"symbol": "AAPL", "bid": 198, "ask": 198.5}]
        )
        assert moved.status_code == 200
        await asyncio.sleep(0.05)  # the broker's events reach the journal
        assert [o.status for o in service.journal.orders()] == ["filled"]
        replay = await client.post("/v1/signals", json=resting)
        assert replay.status_code == 200 and replay.json()["order"]["status"] == "accepted"
        # The late decision keeps what it said then; the order's row keeps what came since.
        assert [o.status for o in service.journal.orders()] == ["filled"]


@pytest.mark.parametrize("reject", [False, True])
async def test_a_decision_that_cannot_be_written_is_answered_once_it_is(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    reject: bool,
    backend: Backend,
    tmp_path: Path,
) -> None:
    # Not the commit this time: the decision's own statement fails (a full disk refuses the
    # page it needs), after the intent was committed and the broker answered.
    service: GatewayService = await make_service(
        make_config(), **backend.service_kwargs(tmp_path / "pair")
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_faults(Faults(reject_submits=int(reject)))
    install_statement_fails(service.journal, failing=(DECISION,))
    async with api_client(service) as client:
        first = await client.post("/v1/signals", json=signal("unwritten"))
        assert first.status_code == 503
        assert first.json()["code"] == "journal_unavailable"
        assert service.journal.probe()
        replay = await client.post("/v1/signals", json=signal("unwritten"))
        assert replay.status_code == 200, replay.text
        assert replay.json()["decision"] == ("rejected" if reject else "accepted")
        stored = service.journal.signal("unwritten")
        assert stored is not None and stored.decision == replay.text
        assert list(broker.submit_counts.values()) == [1]  # never sent twice
