"""The gateway service: builds every part from the config, wires them, and runs them.

This is the one place that knows all the parts; the HTTP API and the CLI talk to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from brokers.base import Broker, BrokerOrder, OrderStatus, utcnow
from brokers.errors import BrokerError
from gateway.config import GatewayConfig
from gateway.models import OutcomeReport
from gateway.ops.alerts import AlertSender
from gateway.ops.metrics import GatewayMetrics
from gateway.ops.scheduler import GatewayScheduler
from gateway.pipeline.engine import Gateway
from gateway.pipeline.reconcile import Reconciliation, compare
from gateway.risk.quotes import QuoteBook
from gateway.risk.state import trigger_still_active
from gateway.safety.failures import FailureTracker, FailureType, SignalGenerationFailure
from gateway.safety.halt import HaltEvent, HaltManager
from gateway.safety.halt_state import HaltStateStore, HaltTrigger
from gateway.safety.killswitch import KillReport, KillSwitch
from gateway.store.journal import Journal

log = logging.getLogger("gateway.service")

JOURNAL_FILE = "journal.sqlite3"
HALT_FILE = "halt_state.json"


def build_broker(config: GatewayConfig, environ: Mapping[str, str]) -> Broker:
    """The adapter the config names; live or paper endpoints follow ``gateway.mode`` alone."""
    name = config.gateway.broker
    paper = config.gateway.mode == "paper"
    if name == "simulated":
        from brokers.simulated.broker import SimulatedBroker

        sim = config.brokers.simulated
        return SimulatedBroker(
            initial_cash=sim.initial_cash,
            quotes=dict(sim.quotes),
            tick_s=sim.tick_s,
            margin_multiplier=sim.margin_multiplier,
            state_path=sim.state_path(config.gateway.state_dir),
            faults=sim.faults,
        )
    if name == "alpaca":
        from brokers.alpaca.broker import AlpacaBroker

        a = config.brokers.alpaca
        urls = {
            k: v
            for k, v in {
                "base_url": a.base_url,
                "data_url": a.data_url,
                "trading_stream_url": a.trading_stream_url,
                "data_stream_url": a.data_stream_url,
            }.items()
            if v
        }
        return AlpacaBroker.from_env(paper=paper, feed=a.feed, environ=environ, **urls)  # type: ignore[no-any-return]
    from brokers.ib.broker import IBBroker

    ib = config.brokers.ib
    return IBBroker(  # type: ignore[no-any-return]
        host=ib.host,
        port=ib.port,
        client_id=ib.client_id,
        account=ib.account,
        paper=paper,
        gateway=ib.gateway,
        allow_delayed_data=ib.allow_delayed_data,
    )


class GatewayService:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        broker: Broker | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: GatewayMetrics | None = None,
    ):
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        state_dir = Path(config.gateway.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        state_dir.chmod(0o700)  # the journal and tokens are for the service's user only
        self.metrics = metrics or GatewayMetrics()
        self.alerts = AlertSender(config.gateway.alerts.webhook_url)
        self.journal = Journal(
            state_dir / JOURNAL_FILE,
            durability=config.gateway.durability,
            on_write=self.metrics.observe_journal_write,
        )
        emergency = config.risk.emergency
        self.halt = HaltManager(
            HaltStateStore(state_dir / HALT_FILE),
            resume_cooldown_s=emergency.resume_cooldown_s,
            clock=clock,
            listeners=[self._on_halt_event],
        )
        stored_failures = self.journal.get("failures")
        tracker_args: dict[str, Any] = {
            "threshold": emergency.failure_threshold,
            "on_threshold": self._on_failure_threshold,
            "clock": clock,
        }
        self._unreadable: str | None = None
        try:
            self.failures = (
                FailureTracker.restore(stored_failures, **tracker_args)
                if stored_failures
                else FailureTracker(**tracker_args)
            )
        except ValueError as exc:
            # Counts we cannot read: start from zero, but halted (see start), never silently.
            self.failures = FailureTracker(**tracker_args)
            self._unreadable = f"failure counts in the journal are unreadable: {exc}"
        self.broker = broker or build_broker(config, self.environ)
        self.quotes = QuoteBook(
            config.gateway.quotes, clock=clock, link_up=lambda: self.broker.connected
        )
        self.engine = Gateway(
            config,
            broker=self.broker,
            journal=self.journal,
            halt=self.halt,
            failures=self.failures,
            quotes=self.quotes,
            metrics=self.metrics,
            clock=clock,
        )
        self.killswitch = KillSwitch(
            halt=self.halt,
            broker=self.broker,
            on_order=self.engine.apply_order_update,
            open_orders=self.engine.book.open_orders,
            flatten_positions=emergency.kill_switch.flatten_positions,
            cancel_retries=emergency.kill_switch.cancel_retries,
        )
        self.scheduler = GatewayScheduler(
            config.gateway.schedule,
            risk_sweep=self.risk_sweep,
            reconcile=self.reconcile,
            trading_day_reset=self.trading_day_reset,
            on_stuck=self._on_job_stuck,
            on_failure=lambda name: self.journal.record_event("job_failure", {"job": name}),
        )
        self.last_reconciliation: Reconciliation | None = None
        self._clock = clock
        self._reconnect_task: asyncio.Task[None] | None = None
        self.engine.on_reconnect = self._reconcile_after_reconnect

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start()
        if self._unreadable:
            self.halt.halt(self._unreadable, HaltTrigger.STATE_UNREADABLE, by="service")
        await self.reconcile()
        self.scheduler.start()
        log.info(
            "gateway ready: %s broker, mode %s, state %s",
            self.broker.name,
            self.config.gateway.mode,
            self.engine.state.value,
        )

    async def stop(self) -> None:
        self.engine.shutting_down = True
        self.scheduler.shutdown()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self.config.gateway.cancel_on_shutdown:
            try:
                report = await self.broker.cancel_all()
                self.journal.record_event(
                    "shutdown_cancel", {"cancelled": report.cancelled, "failed": report.failed}
                )
            except BrokerError as exc:
                log.error("cancel on shutdown failed: %s", exc)
        await self.engine.stop()
        await self.alerts.drain(5.0)
        await self.alerts.aclose()
        self.journal.close()

    # --- halt, kill, resume ------------------------------------------------------------------

    def _on_halt_event(self, event: HaltEvent) -> None:
        payload: dict[str, Any] = {"by": event.by, "detail": event.detail}
        if event.record is not None:
            payload.update(
                reason=event.record.reason,
                trigger=event.record.trigger.value,
                kill_switch=event.record.kill_switch,
                measure=event.record.measure,
                threshold=event.record.threshold,
            )
        self.journal.record_event(f"halt.{event.kind}", payload, at=event.at)
        if event.kind == "halt" and event.record is not None:
            self.metrics.observe_halt(event.record.trigger.value)
        if event.kind in ("halt", "forced_resume"):
            self.alerts.send(event.kind, {"summary": event.summary, **payload})
        # Listeners only fire from the engine's start on (restore), when the engine exists.
        self.metrics.set_state(self.engine.state.value)

    def _on_failure_threshold(self, reason: str, failure: SignalGenerationFailure) -> None:
        self.halt.halt(reason, HaltTrigger.TECHNICAL_FAILURE, by="failure_tracker")

    def _on_job_stuck(self, job: str, reason: str) -> None:
        self.halt.halt(reason, HaltTrigger.JOB_FAILURE, by=f"scheduler:{job}")

    def halt_trading(self, reason: str, *, by: str) -> dict[str, Any]:
        self.halt.halt(reason, HaltTrigger.MANUAL, by=by)
        return self.status()

    async def kill(self, reason: str, *, by: str) -> dict[str, Any]:
        report: KillReport = await self.killswitch.kill(reason, by=by)
        self.metrics.observe_kill_switch()
        self.journal.record_event(
            "kill_switch",
            {
                "by": by,
                "reason": reason,
                "cancelled": report.cancelled,
                "failed": report.failed,
                "flattened": report.flattened,
                "flatten_failed": report.flatten_failed,
                "elapsed_ms": report.elapsed_ms,
            },
        )
        self.alerts.send(
            "kill",
            {
                "reason": reason,
                "by": by,
                "cancelled": len(report.cancelled),
                "failed": report.failed,
                "summary": self.halt.summary(),
            },
        )
        return {
            "cancelled": len(report.cancelled),
            "failed": [{"order_id": oid, "reason": why} for oid, why in report.failed.items()],
            "flattened": report.flattened,
            "elapsed_ms": round(report.elapsed_ms, 3),
            "halt_ms": round(report.halt_ms, 3),
            "status": self.status(),
        }

    def resume(self, *, by: str, force: bool, auth_code: str | None) -> dict[str, Any]:
        measures = self.engine.measures()
        self.halt.resume(
            by=by,
            force=force,
            auth_code=auth_code,
            expected_auth_code=self.environ.get("GATEWAY_RESUME_AUTH_CODE") or None,
            trigger_active=lambda record: trigger_still_active(
                record.trigger.value, measures, self.config.risk
            ),
        )
        self.metrics.set_state(self.engine.state.value)
        return self.status()

    # --- failures ----------------------------------------------------------------------------

    def record_outcome(self, report: OutcomeReport) -> dict[str, Any]:
        if report.ok:
            self.failures.record_success(report.strategy, report.symbol)
        else:
            failure_type = FailureType(report.failure_type or "strategy_error")
            self.failures.record_failure(
                report.strategy, report.symbol, report.error or "unspecified failure", failure_type
            )
            self.metrics.observe_failure(failure_type.value)
        self.journal.put("failures", self.failures.snapshot())
        self.journal.record_event(
            "outcome",
            {
                "strategy": report.strategy,
                "symbol": report.symbol,
                "ok": report.ok,
                "failure_type": report.failure_type,
                "error": report.error,
            },
        )
        return self.failures.status()

    def reset_failures(self, *, by: str) -> dict[str, Any]:
        self.failures.reset(by)
        self.journal.put("failures", self.failures.snapshot())
        self.journal.record_event("failures_reset", {"by": by})
        return self.failures.status()

    # --- jobs --------------------------------------------------------------------------------

    async def risk_sweep(self) -> None:
        self.engine.evaluate_risk()
        self.engine.persist_marks()
        for symbol in self.quotes.symbols():
            age = self.quotes.age_s(symbol)
            if age is not None:
                self.metrics.set_quote_age(symbol, age)

    async def trading_day_reset(self) -> None:
        self.engine.reset_trading_day()

    async def reconcile(self) -> None:
        orders = await self.broker.open_orders()
        positions = await self.broker.positions()
        account = await self.broker.account()
        engine = self.engine
        result = compare(
            engine.book,
            orders,
            positions,
            marks=self.quotes.marks(),
            equity=account.equity,
            at=self._clock().isoformat(),
        )
        theirs = {o.client_order_id: o for o in orders}
        for coid in result.adopted:
            engine.apply_order_update(theirs[coid])
        engine.flush_order_updates()
        for coid in result.adopted:
            self.journal.mark_external(coid)
        for coid in result.lost:
            tracked = engine.book.orders.get(coid)
            if tracked is not None:
                lost: BrokerOrder = tracked.order.model_copy(update={"status": OrderStatus.EXPIRED})
                engine.apply_order_update(lost)
        if result.positions:
            engine.book.load_positions(positions)
        engine.book.load_account(account)
        self.last_reconciliation = result
        self.metrics.observe_reconciliation(
            {
                "adopted": len(result.adopted),
                "lost": len(result.lost),
                "positions": len(result.positions),
            }
        )
        if result.differences:
            self.journal.record_event("reconciliation", result.as_json())
            log.warning("reconciliation found %d differences", result.differences)
        tolerance = self.config.gateway.reconciliation.halt_tolerance
        if result.worst_fraction > tolerance:
            self.halt.halt(
                f"reconciliation: position difference {result.worst_fraction:.4%} of equity "
                f"exceeds {tolerance:.2%}",
                HaltTrigger.RECONCILIATION,
                by="reconciliation",
                measure=float(result.worst_fraction),
                threshold=float(tolerance),
            )
        engine.evaluate_risk()

    def _reconcile_after_reconnect(self) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._reconnect_task = asyncio.create_task(
            self.scheduler.jobs["reconcile"].run(), name="reconcile-after-reconnect"
        )

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        engine = self.engine
        measures = engine.measures() if engine.started else None
        summary = self.halt.summary()
        failures = self.failures.status()
        return {
            "state": engine.state.value,
            "halt": summary,
            "reduce_only": engine.reduce_only_reason,
            "risk": measures.as_json() if measures else None,
            "failures": failures,
            "orders": {"open": len(engine.book.orders)},
            "broker": {"name": self.broker.name, "connected": self.broker.connected},
            "mode": self.config.gateway.mode,
            "reconciliation": (
                self.last_reconciliation.as_json() if self.last_reconciliation else None
            ),
            "jobs": self.scheduler.status(),
        }

    def open_orders(self) -> list[BrokerOrder]:
        return self.engine.book.open_orders()
