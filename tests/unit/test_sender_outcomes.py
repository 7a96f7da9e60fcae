"""The order sender on each answer a broker can give: what the decision is told, what the
journal keeps, whether the reservation goes, and what counts as a failure of the strategy."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderRequest, OrderStatus
from brokers.errors import AnswerUnknown, BrokerError, NotSent, OrderRejected
from gateway.models import ReasonCode
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.sender import OrderSender
from gateway.safety.failures import FailureTracker
from gateway.safety.halt import HaltManager, HaltStateStore
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal

COID = "gw-1"


def request() -> OrderRequest:
    return OrderRequest(
        client_order_id=COID,
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=190,
        time_in_force="gtc",
    )


def placed(status: OrderStatus = OrderStatus.NEW) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=COID,
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=1,
        status=status,
        order_type="limit",
        limit_price=190,
        time_in_force="gtc",
    )


class Broker:
    """Answers submit, cancel and get_order as the test says; submit may be held."""

    name = "scripted"

    def __init__(self) -> None:
        self.submit_error: BaseException | None = None
        self.cancel_error: BrokerError | None = None
        self.lookup: BrokerOrder | BrokerError | None = None
        self.held: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.cancels: list[str] = []

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        if self.held is not None:
            self.entered.set()
            await self.held.wait()
        if self.submit_error is not None:
            raise self.submit_error
        return placed()

    async def cancel(self, client_order_id: str) -> None:
        self.cancels.append(client_order_id)
        if self.cancel_error is not None:
            raise self.cancel_error

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if isinstance(self.lookup, BrokerError):
            raise self.lookup
        return self.lookup


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "journal.sqlite3"
        self.journal = Journal(self.path)
        self.halt = HaltManager(HaltStateStore(tmp_path / "halt.json"), resume_cooldown_s=300)
        self.failures = FailureTracker(
            threshold=3, clock=lambda: datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
        )
        self.broker = Broker()
        self.released: list[str] = []
        self.applied: list[BrokerOrder] = []
        self.unknown: list[OrderRequest] = []
        self.metrics = GatewayMetrics(process_metrics=False)

        async def durable(ticket: int) -> None:
            self.journal.commit_now(ticket)

        self.sender = OrderSender(
            broker=self.broker,  # type: ignore[arg-type]
            journal=self.journal,
            halt=self.halt,
            failures=self.failures,
            metrics=self.metrics,
            durable=durable,
            release=self.released.append,
            apply_order=self.applied.append,
            on_unknown=self.unknown.append,
        )

    def write_intent(self) -> int:
        return self.journal.record_intent(
            signal_id="s-1",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            order=request(),
            valued_at="190",
            defer=True,
        )

    async def intent(self) -> None:
        await self.sender.make_durable(request(), self.write_intent)

    def row(self) -> tuple[str, list[tuple[str, str | None]]]:
        """The order's status and its events (status, detail), read as another process would."""
        reader = sqlite3.connect(self.path)
        try:
            (status,) = reader.execute(
                "SELECT status FROM orders WHERE client_order_id=?", (COID,)
            ).fetchone()
            events = reader.execute(
                "SELECT status, detail FROM order_events WHERE client_order_id=? ORDER BY rowid",
                (COID,),
            ).fetchall()
        finally:
            reader.close()
        return str(status), [(str(s), d) for s, d in events]


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    r = Rig(tmp_path)
    yield r
    r.journal.close()


# --- the intent and the last gate ------------------------------------------------------------


async def test_an_intent_that_cannot_be_made_durable_releases_its_reservation(rig: Rig) -> None:
    def full_disk() -> int:
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError):
        await rig.sender.make_durable(request(), full_disk)
    assert rig.released == [COID]


async def test_the_last_gate_names_the_halt_in_force(rig: Rig) -> None:
    assert rig.sender.may_send() is None
    rig.halt.halt("risk desk", HaltTrigger.MANUAL, by="test")
    reason = rig.sender.may_send()
    assert reason is not None
    assert reason.code is ReasonCode.HALTED
    assert "manual: risk desk" in reason.message


async def test_the_last_gate_stops_an_order_while_the_gateway_shuts_down(rig: Rig) -> None:
    rig.sender.stopping = True
    reason = rig.sender.may_send()
    assert reason is not None
    assert reason.code is ReasonCode.SHUTTING_DOWN


async def test_an_order_not_sent_is_released_and_journaled_cancelled_with_why(rig: Rig) -> None:
    await rig.intent()
    rig.sender.not_sent(request(), "halted before it left")
    assert rig.released == [COID]
    assert rig.row() == ("canceled", [("canceled", "halted before it left")])


# --- the broker's answer -----------------------------------------------------------------------


async def test_a_broker_refusal_is_rejected_released_journaled_and_no_failure(rig: Rig) -> None:
    await rig.intent()
    rig.broker.submit_error = OrderRejected("insufficient buying power")
    result = await rig.sender.send(request(), "momentum")
    assert (result.order, result.code, result.unknown) == (None, ReasonCode.BROKER_REJECTED, False)
    assert "insufficient buying power" in result.message
    assert rig.released == [COID]
    status, events = rig.row()
    assert status == "rejected"
    assert [s for s, _ in events] == ["rejected"]
    assert "insufficient buying power" in str(events[0][1])
    assert rig.failures.consecutive_for("momentum") == 0
    assert rig.journal.get("failures") is None


async def test_an_unreachable_broker_is_a_failure_of_the_strategy_and_is_persisted(
    rig: Rig,
) -> None:
    await rig.intent()
    rig.broker.submit_error = NotSent("link down")
    result = await rig.sender.send(request(), "momentum")
    assert (result.order, result.code, result.unknown) == (
        None,
        ReasonCode.BROKER_UNAVAILABLE,
        False,
    )
    assert "link down" in result.message
    assert rig.released == [COID]
    status, events = rig.row()
    assert status == "rejected"
    assert "link down" in str(events[0][1])
    [failure] = rig.failures.status()["recent"]
    assert (failure["strategy"], failure["symbol"], failure["failure_type"]) == (
        "momentum",
        "AAPL",
        "broker_error",
    )
    assert "link down" in failure["error"]
    assert rig.failures.consecutive_for("momentum") == 1
    # Kept for a restart, as the tracker would restore it.
    assert rig.journal.get("failures") == json.loads(
        json.dumps(rig.failures.snapshot(), default=str)
    )


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (AnswerUnknown("answer lost"), "submit answer unknown: answer lost"),
        (RuntimeError("adapter bug"), "submit failed unexpectedly"),
    ],
    ids=["answer-lost", "untranslated-error"],
)
async def test_an_order_that_may_have_landed_keeps_its_reservation_and_is_settled_later(
    rig: Rig, error: BaseException, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.intent()
    rig.broker.submit_error = error
    with caplog.at_level(logging.WARNING, logger="gateway.pipeline.sender"):
        result = await rig.sender.send(request(), "momentum")
    [record] = [r for r in caplog.records if r.name == "gateway.pipeline.sender"]
    assert record.client_order_id == COID  # type: ignore[attr-defined]
    assert record.getMessage() == logged
    assert str(error) in record.getMessage() + (record.exc_text or "")
    assert (result.order, result.code, result.unknown) == (
        None,
        ReasonCode.BROKER_ANSWER_UNKNOWN,
        True,
    )
    assert "/v1/orders" in result.message  # the strategy is told where its fate will show
    assert [r.client_order_id for r in rig.unknown] == [COID]
    assert rig.released == []
    assert rig.row() == ("pending_submit", [])
    assert rig.failures.consecutive_for("momentum") == 0


# --- an order that comes back after a halt -----------------------------------------------------


async def test_an_order_back_after_a_halt_is_cancelled_and_said_so(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.intent()
    rig.halt.halt("desk", HaltTrigger.MANUAL, by="test")
    with caplog.at_level(logging.WARNING, logger="gateway.pipeline.sender"):
        result = await rig.sender.send(request(), "momentum")
    assert result.order is not None and result.order.status is OrderStatus.CANCELED
    assert result.code is ReasonCode.HALTED
    assert "cancelled" in result.message
    assert rig.broker.cancels == [COID]
    assert [o.status for o in rig.applied] == [OrderStatus.NEW, OrderStatus.CANCELED]
    [record] = [r for r in caplog.records if r.name == "gateway.pipeline.sender"]
    assert "cancelled" in record.getMessage()
    assert record.client_order_id == COID  # type: ignore[attr-defined]


async def test_an_order_back_after_a_halt_that_cannot_be_cancelled_is_logged_as_an_error(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither cancelled nor found final (the look-up failed too): it may rest."""
    await rig.intent()
    rig.halt.halt("desk", HaltTrigger.MANUAL, by="test")
    rig.broker.cancel_error = OrderRejected("cancel refused")
    rig.broker.lookup = BrokerError("look-up down")
    with caplog.at_level(logging.WARNING, logger="gateway.pipeline.sender"):
        result = await rig.sender.send(request(), "momentum")
    assert result.order == placed()
    assert result.code is ReasonCode.HALTED
    assert "cancel refused" in result.message
    [record] = [r for r in caplog.records if r.name == "gateway.pipeline.sender"]
    assert record.levelno == logging.ERROR
    assert "could not be cancelled" in record.getMessage()
    assert "cancel refused" in record.getMessage()
    assert record.client_order_id == COID  # type: ignore[attr-defined]


# --- the registry the kill switch waits on -------------------------------------------------------


async def test_the_kill_switch_learns_what_became_of_each_submit_on_the_wire(rig: Rig) -> None:
    await rig.intent()
    rig.broker.held = asyncio.Event()
    sending = asyncio.create_task(rig.sender.send(request(), "momentum"))
    await rig.broker.entered.wait()
    done, waiting = await rig.sender.settle_in_flight(0)
    assert (done, waiting) == ([], [COID])
    rig.halt.halt("kill", HaltTrigger.KILL_SWITCH, by="test")
    settling = asyncio.create_task(rig.sender.settle_in_flight(60))
    rig.broker.held.set()
    done, waiting = await settling
    await sending
    assert waiting == []
    [outcome] = done
    assert outcome.client_order_id == COID
    assert outcome.cancelled is True
    assert outcome.order is not None and outcome.order.status is OrderStatus.CANCELED
    assert rig.sender.in_flight == 0
    assert await rig.sender.settle_in_flight(60) == ([], [])


async def test_a_submit_that_lands_and_ends_meanwhile_is_no_cancel_failure(rig: Rig) -> None:
    await rig.intent()
    rig.halt.halt("kill", HaltTrigger.KILL_SWITCH, by="test")
    rig.broker.cancel_error = OrderRejected("already cancelled")
    rig.broker.lookup = placed(OrderStatus.CANCELED)
    rig.broker.held = asyncio.Event()
    sending = asyncio.create_task(rig.sender.send(request(), "momentum"))
    await rig.broker.entered.wait()
    settling = asyncio.create_task(rig.sender.settle_in_flight(60))
    rig.broker.held.set()
    [outcome], _ = await settling
    result = await sending
    assert outcome.order == placed(OrderStatus.CANCELED)
    assert outcome.cancel_error is None
    assert result.code is ReasonCode.HALTED
    assert "canceled" in result.message
    assert rig.applied[-1] == placed(OrderStatus.CANCELED)


async def test_a_submit_stopped_on_the_wire_still_tells_the_kill_switch_it_has_no_order(
    rig: Rig,
) -> None:
    """Cancelled mid-flight (a shutdown): the kill switch hears of it, and looks it up."""
    await rig.intent()
    rig.broker.held = asyncio.Event()
    sending = asyncio.create_task(rig.sender.send(request(), "momentum"))
    await rig.broker.entered.wait()
    settling = asyncio.create_task(rig.sender.settle_in_flight(60))
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    [outcome], waiting = await settling
    assert waiting == []
    assert (outcome.client_order_id, outcome.order) == (COID, None)
    assert rig.sender.in_flight == 0


async def test_each_submit_is_timed_from_call_to_answer(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.intent()
    ticks = iter([10.0, 10.25])
    monkeypatch.setattr("gateway.pipeline.sender.time.perf_counter", lambda: next(ticks))
    await rig.sender.send(request(), "momentum")
    registry = rig.metrics.registry
    assert registry.get_sample_value("gateway_submit_latency_seconds_count") == 1
    assert registry.get_sample_value("gateway_submit_latency_seconds_sum") == 0.25
