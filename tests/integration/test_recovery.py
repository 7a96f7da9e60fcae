"""Restart recovery, reconciliation, the journal's schema guard and the trading-day clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import OrderRequest
from brokers.simulated.broker import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.service import GatewayService
from gateway.store.journal import SCHEMA_VERSION, Journal, JournalError
from tests.conftest import TEST_ENV, signal
from tests.e2e.process import GatewayProcess


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_undecided_intent_is_resolved_by_asking_the_broker(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()  # the simulated account persists in state_dir by default
    # A crash after the broker took the order but before the decision was journaled:
    journal = Journal(config.gateway.state_dir / "journal.sqlite3")
    landed = OrderRequest(client_order_id="gw-landed", symbol="AAPL", side="buy", quantity=3)
    lost = OrderRequest(client_order_id="gw-never-sent", symbol="AAPL", side="buy", quantity=4)
    for sid, order in (("landed", landed), ("never", lost)):
        body = Signal(**signal(sid, quantity=order.quantity)).model_dump_json()
        journal.record_intent(
            signal_id=sid,
            body_hash="h",
            body=body,
            strategy="momentum",
            symbol="AAPL",
            order=order,
            valued_at="200",
        )
    journal.close()
    state_path = config.brokers.simulated.state_path(config.gateway.state_dir)
    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, state_path=state_path)
    await broker.connect()
    await broker.submit(landed)
    await broker.close()

    service = await make_service(config)
    sim = service.broker
    assert isinstance(sim, SimulatedBroker)
    assert sim.submit_counts == {"gw-landed": 1}  # nothing was sent again
    stored = {s.signal_id: s for s in service.journal.signals()}
    assert '"decision":"accepted"' in (stored["landed"].decision or "")
    assert '"broker_unavailable"' in (stored["never"].decision or "")
    assert service.engine.book.position_qty("AAPL") == 3  # once, from the broker's positions
    assert service.status()["reconciliation"]["differences"] == 0


async def test_reconciliation_adopts_marks_lost_and_corrects_positions(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(gateway={"gateway": {"reconciliation": {"halt_tolerance": 0.05}}})
    service = await make_service(config)
    sim = service.broker
    assert isinstance(sim, SimulatedBroker)
    # An order placed at the broker by hand, and a fill the gateway never heard of.
    await sim.submit(
        OrderRequest(
            client_order_id="by-hand",
            symbol="AAPL",
            side="buy",
            quantity=5,
            order_type="limit",
            limit_price=150,
        )
    )
    await sim.submit(
        OrderRequest(client_order_id="by-hand-2", symbol="AAPL", side="buy", quantity=10)
    )
    await service.reconcile()
    status = service.status()
    rec = status["reconciliation"]
    assert rec["adopted_orders"] == ["by-hand"]
    assert rec["positions"][0]["broker_qty"] == 10.0 and rec["positions"][0]["journal_qty"] == 0
    assert service.engine.book.position_qty("AAPL") == 10
    assert status["state"] == "active"  # 2,000 of 100,000 is within the 5% tolerance
    external = [o for o in service.journal.orders() if o.external]
    assert {o.client_order_id for o in external} >= {"by-hand"}
    assert any(e["kind"] == "reconciliation" for e in service.journal.events())


async def test_reconciliation_difference_above_tolerance_halts(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config())
    sim = service.broker
    assert isinstance(sim, SimulatedBroker)
    await sim.submit(OrderRequest(client_order_id="ghost", symbol="AAPL", side="buy", quantity=10))
    await service.reconcile()  # 2,000 of 100,000 = 2% > the default 1% tolerance
    summary = service.halt.summary()
    assert summary is not None and summary["trigger"] == "reconciliation"


def test_journal_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match="newer than this gateway"):
        Journal(path)
    assert path.read_bytes() == before


def test_corrupt_journal_header_refuses_to_start_with_a_clear_message(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path)
    gw.state_dir.mkdir(parents=True)
    (gw.state_dir / "journal.sqlite3").write_bytes(b"this is not a database" * 100)
    result = gw.cli("serve")
    assert result.returncode == 2
    assert "journal" in result.stderr and "unreadable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"

    def version() -> int:
        db = sqlite3.connect(path)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()

    Journal(path).close()
    assert version() == SCHEMA_VERSION
    Journal(path).close()  # reopened as it is
    assert version() == SCHEMA_VERSION


async def test_trading_day_reset_is_caught_up_after_downtime(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()  # the simulated account persists in state_dir by default
    # 2026-11-24 10:00 in New York: trading day 2026-11-24 (reset at 09:25).
    clock = Clock(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    first = await make_service(config, clock=clock)
    first.broker.set_quote("AAPL", 199.95, 200.05)  # type: ignore[attr-defined]
    await first.engine.submit_signal(Signal(**signal("d1", quantity=100)))
    marks = first.engine.marks
    assert marks.trading_day.isoformat() == "2026-11-24"
    assert marks.day_start_equity == Decimal(100000)
    await first.stop()

    # Back the next morning before the reset (09:00 NY): still the 24th's trading day.
    early = Clock(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    second = await make_service(config, clock=early)
    assert second.engine.marks.trading_day.isoformat() == "2026-11-24"
    assert second.engine.marks.day_start_equity == Decimal(100000)
    await second.stop()

    # Down over the reset, back at 11:00 NY: the missed reset is caught up at start.
    late = Clock(datetime(2026, 11, 25, 16, 0, tzinfo=UTC))
    third = await make_service(config, clock=late)
    marks = third.engine.marks
    assert marks.trading_day.isoformat() == "2026-11-25"
    assert marks.day_start_equity == third.engine.equity()
    assert marks.peak_equity >= Decimal(100000) - Decimal(10)  # the peak carries over
    resets = [e for e in third.journal.events() if e["kind"] == "trading_day_reset"]
    assert resets[0]["trading_day"] == "2026-11-25"


async def test_scheduled_reset_clears_reduce_only(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService = await make_service(make_config(), environ=TEST_ENV)
    service.engine.monitor.reduce_only = "daily_loss 3% >= limit 2%"
    assert service.engine.state.value == "reduce_only"
    await service.trading_day_reset()
    assert service.engine.state.value == "active"


async def test_a_job_that_keeps_failing_halts_the_gateway(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService = await make_service(make_config())
    broker = service.broker

    async def broken() -> list[Any]:
        raise RuntimeError("broker API changed under us")

    broker.positions = broken  # type: ignore[method-assign]
    runner = service.scheduler.jobs["reconcile"]
    for _ in range(2):
        await runner.run()
    assert service.engine.state.value == "active"  # counted, logged, not yet a halt
    await runner.run()
    summary = service.halt.summary()
    assert summary is not None and summary["trigger"] == "job_failure"
    assert service.status()["jobs"]["reconcile"]["consecutive_failures"] == 3
    assert len([e for e in service.journal.events() if e["kind"] == "job_failure"]) == 3


async def test_unreadable_failure_counts_start_the_gateway_halted(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    journal = Journal(config.gateway.state_dir / "journal.sqlite3")
    journal.put("failures", {"version": 999})
    journal.close()
    service = await make_service(config)
    summary = service.halt.summary()
    assert summary is not None and summary["trigger"] == "state_unreadable"
    assert "failure counts" in summary["reason"]


async def test_the_status_keeps_what_reconciliation_found_after_a_clean_run(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    from brokers.base import OrderRequest
    from brokers.simulated import SimulatedBroker

    broker = SimulatedBroker(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
    await broker.connect()
    placed_by_hand = OrderRequest(
        client_order_id="by-hand-1",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    await broker.submit(placed_by_hand)  # at the broker, not in the journal
    service = await make_service(make_config(), broker=broker)
    first = service.status()["reconciliation"]
    assert first["differences"] == 1 and first["adopted_orders"] == ["by-hand-1"]
    await service.reconcile()  # nothing new: a clean run
    status = service.status()["reconciliation"]
    assert status["differences"] == 0
    assert status["last_with_differences"]["adopted_orders"] == ["by-hand-1"]
