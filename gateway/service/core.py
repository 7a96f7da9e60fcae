"""The gateway service: builds every part from the config, wires them, and runs them.

This is the one place that knows all the parts; the HTTP API and the CLI talk to it. Before it
opens anything it checks that the state dir's files vouch for each other (see
``gateway.store.statedir``): lost or damaged state is never mistaken for a fresh start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brokers.base import Broker, BrokerOrder, utcnow
from brokers.errors import BrokerError
from brokers.retrying import RetryingBroker
from gateway.config import GatewayConfig
from gateway.models import OutcomeReport
from gateway.ops.alerts import AlertSender
from gateway.ops.metrics import GatewayMetrics
from gateway.ops.scheduler import GatewayScheduler
from gateway.pipeline.engine import Gateway
from gateway.pipeline.fill_recovery import FillRecovery
from gateway.risk.quotes import QuoteBook
from gateway.safety.failures import FailureTracker, FailureType, SignalGenerationFailure
from gateway.safety.halt import HaltEvent, HaltManager
from gateway.safety.halt_state import HaltStateStore, HaltTrigger
from gateway.safety.killswitch import KillSwitch
from gateway.service.brokers import build_broker
from gateway.service.controls import Controls
from gateway.service.feed import EventFeed
from gateway.service.pair import check_pair_journal
from gateway.service.protection import ProtectionWatch
from gateway.service.reconciling import Reconciler
from gateway.service.restart import complete_interrupted_kill, vouch_for_halt_state
from gateway.service.views import StatePublisher, service_status, stale_quotes
from gateway.store.db import Driver
from gateway.store.events import EventSource
from gateway.store.journal import Journal, WriteFailure
from gateway.store.statedir import StateDir

if TYPE_CHECKING:
    from gateway.service.firm import FirmService

log = logging.getLogger("gateway.service")


class GatewayService:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        broker: Broker | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: GatewayMetrics | None = None,
        new_journal: bool = False,
        journal_db: Driver | None = None,
        event_log: Callable[[], EventSource] | None = None,
    ):
        """``journal_db``: an active/standby pair's journal (PostgreSQL, in the session that
        holds the account's lock) instead of the SQLite file in the state dir; ``event_log``
        opens that journal's event log for GET /v1/events."""
        self.config = config
        self.paired = journal_db is not None
        self.environ = dict(os.environ if environ is None else environ)
        self._clock = clock
        self.state_dir = StateDir(Path(config.gateway.state_dir))
        self.state_dir.path.mkdir(parents=True, exist_ok=True)
        self.state_dir.path.chmod(0o700)  # the journal and tokens are for the service's user only
        self._halt_file_was_missing = not self.state_dir.halt_file.exists()
        if journal_db is None:  # the pair's journal is not a file beside the halt state
            self.state_dir.check_journal(new_journal=new_journal)
        self.metrics = metrics or GatewayMetrics()
        self.alerts = AlertSender(config.gateway.alerts.webhook_url)
        self.journal = Journal(
            self.state_dir.journal,
            durability=config.gateway.durability,
            on_write=self.metrics.observe_journal_write,
            on_failure=self._on_journal_failure,
            on_recovered=self._on_journal_recovered,
            db=journal_db,
        )
        if journal_db is not None:
            check_pair_journal(self.state_dir, self.journal, new_journal=new_journal)
        # GET /v1/events reads the journal back on a connection of its own.
        self.feed = EventFeed(event_log or self.state_dir.journal)
        self.journal.on_commit(self.feed.notify)
        self.halt = HaltManager(
            HaltStateStore(self.state_dir.halt_file),
            resume_cooldown_s=config.risk.emergency.resume_cooldown_s,
            clock=clock,
            listeners=[self._on_halt_event],
        )
        self._unreadable: str | None = None
        self.failures = self._restore_failures()
        # The adapter itself (the simulated market's controls, the status), and the same behind
        # the one retry layer for everything that trades or reads.
        self.broker = broker or build_broker(config, self.environ)
        self.trading = RetryingBroker(self.broker)
        self.quotes = QuoteBook(
            config.gateway.quotes, clock=clock, link_up=lambda: self.broker.connected
        )
        self.engine = Gateway(
            config,
            broker=self.trading,
            journal=self.journal,
            halt=self.halt,
            failures=self.failures,
            quotes=self.quotes,
            metrics=self.metrics,
            clock=clock,
            lookups=self.broker,
        )
        self._publish_state = StatePublisher(
            journal=self.journal,
            halt=self.halt,
            state=lambda: self.engine.state.value,
            reduce_only=lambda: self.engine.reduce_only_reason,
        )
        self.engine.monitor.on_state = self.publish_state
        self._wire_operations()

    def _wire_operations(self) -> None:
        """The kill switch, the halt/resume controls, reconciliation and the scheduled jobs."""
        emergency = self.config.risk.emergency
        self.killswitch = KillSwitch(
            halt=self.halt,
            broker=self.broker,
            on_order=self.engine.apply_order_update,
            open_orders=self.engine.book.open_orders,
            flatten_positions=emergency.kill_switch.flatten_positions,
            cancel_retries=emergency.kill_switch.cancel_retries,
            in_flight=self.engine.sender.settle_in_flight,
            submit_flatten=self.engine.flatten,
            unknown_orders=lambda: self.engine.unknown.pending,
            cancel_when_found=self.engine.unknown.cancel_when_found,
        )
        self.controls = Controls(
            self.config,
            engine=self.engine,
            halt=self.halt,
            killswitch=self.killswitch,
            journal=self.journal,
            alerts=self.alerts,
            metrics=self.metrics,
            environ=self.environ,
            status=self.status,
        )
        self.protection = ProtectionWatch(
            self.config,
            book=self.engine.book,
            marks=self.quotes.marks,
            halt=self.halt,
            alerts=self.alerts,
            journal=self.journal,
        )
        self.reconciler = Reconciler(
            self.config,
            engine=self.engine,
            broker=self.trading,
            journal=self.journal,
            halt=self.halt,
            metrics=self.metrics,
            clock=self._clock,
        )
        self.fill_recovery = FillRecovery(self.journal, self.trading)
        self.scheduler = GatewayScheduler(
            self.config.gateway.schedule,
            risk_sweep=self.risk_sweep,
            reconcile=self.reconcile,
            trading_day_reset=self.trading_day_reset,
            on_stuck=self._on_job_stuck,
            on_failure=lambda name: self.journal.record_event("job_failure", {"job": name}),
        )
        self._reconnect_task: asyncio.Task[None] | None = None
        self._equity_mark: float | None = None
        self.engine.events.on_reconnect = self._reconcile_after_reconnect
        self.firm: FirmService | None = None
        if self.config.firm is not None:
            from gateway.service.firm_boot import build_firm  # psycopg only with a firm: section

            self.firm = build_firm(self)

    def _restore_failures(self) -> FailureTracker:
        emergency = self.config.risk.emergency
        tracker_args: dict[str, Any] = {
            "threshold": emergency.failure_threshold,
            "on_threshold": self._on_failure_threshold,
            "clock": self._clock,
        }
        stored = self.journal.get("failures")
        try:
            if stored:
                return FailureTracker.restore(stored, **tracker_args)
        except ValueError as exc:
            # Counts we cannot read: start from zero, but halted (see start), never silently.
            self._unreadable = f"failure counts in the journal are unreadable: {exc}"
        return FailureTracker(**tracker_args)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        vouch_for_halt_state(
            self.halt,
            self.journal,
            paired=self.paired,
            halt_file_was_missing=self._halt_file_was_missing,
            halt_file=self.state_dir.halt_file,
        )
        self.feed.start()
        if self.firm is not None:
            await self.firm.start()  # a firm halt in force holds before the broker connects
        await self.engine.start()
        if self._unreadable:
            self.halt.halt(self._unreadable, HaltTrigger.STATE_UNREADABLE, by="service")
        await self.reconcile()
        await self.fill_recovery.run()  # after reconcile: the journal holds the broker's states
        await complete_interrupted_kill(self.halt, self.journal, self.controls)
        if self.firm is not None:
            await self.firm.started()
        self.publish_state()
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
                report = await self.trading.cancel_all()
                self.journal.record_event(
                    "shutdown_cancel", {"cancelled": report.cancelled, "failed": report.failed}
                )
            except BrokerError as exc:
                log.error("cancel on shutdown failed: %s", exc)
        await self.engine.stop()
        if self.firm is not None:
            await self.firm.stop()
        await self.alerts.drain(5.0)
        await self.alerts.aclose()
        await self.feed.stop()
        self.journal.close()

    # --- events of the parts -----------------------------------------------------------------

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
        if event.requested is not None and event.requested is not event.record:
            payload["requested"] = {
                "reason": event.requested.reason,
                "trigger": event.requested.trigger.value,
                "measure": event.requested.measure,
                "threshold": event.requested.threshold,
            }
        if event.kind in ("resume", "forced_resume"):
            payload["blocked"] = event.blocked
        self.journal.record_event(f"halt.{event.kind}", payload, at=event.at)
        self.publish_state()
        if event.kind == "halt" and event.record is not None:
            self.metrics.observe_halt(event.record.trigger.value)
        if event.kind in ("halt", "forced_resume"):
            self.alerts.send(event.kind, {"summary": event.summary, **payload})
        self.metrics.set_state(self.engine.state.value)

    def _on_failure_threshold(self, reason: str, failure: SignalGenerationFailure) -> None:
        self.halt.halt(reason, HaltTrigger.TECHNICAL_FAILURE, by="failure_tracker")

    def _on_job_stuck(self, job: str, reason: str) -> None:
        self.halt.halt(reason, HaltTrigger.JOB_FAILURE, by=f"scheduler:{job}")

    def _on_journal_failure(self, failure: WriteFailure) -> None:
        self.metrics.set_journal_writable(False)
        reason = f"journal cannot write: {failure.error}"[:500]
        # Not from inside the journal's own failing write: on the loop's next turn.
        halt = functools.partial(self.halt.halt, reason, HaltTrigger.JOURNAL_FAILURE, by="journal")
        try:
            asyncio.get_running_loop().call_soon(halt)
        except RuntimeError:
            halt()

    def _on_journal_recovered(self) -> None:
        self.metrics.set_journal_writable(True)

    # --- what the API asks -------------------------------------------------------------------

    def halt_trading(self, reason: str, *, by: str) -> dict[str, Any]:
        return self.controls.halt(reason, by=by)

    async def kill(self, reason: str, *, by: str) -> dict[str, Any]:
        return await self.controls.kill(reason, by=by)

    def resume(self, *, by: str, force: bool, auth_code: str | None) -> dict[str, Any]:
        return self.controls.resume(by=by, force=force, auth_code=auth_code)

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
        self.journal.record_event("outcome", report.model_dump(mode="json"))
        return self.failures.status()

    def reset_failures(self, *, by: str) -> dict[str, Any]:
        self.failures.reset(by)
        self.journal.put("failures", self.failures.snapshot())
        self.journal.record_event("failures_reset", {"by": by})
        return self.failures.status()

    def open_orders(self) -> list[BrokerOrder]:
        return self.engine.book.open_orders()

    # --- jobs --------------------------------------------------------------------------------

    async def risk_sweep(self) -> None:
        if self.journal.failure is not None:
            self.journal.probe()
        if not self.halt.persisted:
            self.halt.retry_persist()
        equity = float(self.engine.evaluate_risk().equity)
        if equity != self._equity_mark:  # the operator page's chart: a point at each change
            self._equity_mark = equity
            self.journal.record_event("equity", {"equity": equity})
        self.engine.monitor.persist()
        self.protection.check()
        self.engine.legs.sweep()
        self.publish_state()
        for symbol in self.quotes.symbols():
            age = self.quotes.age_s(symbol)
            if age is not None:
                self.metrics.set_quote_age(symbol, age)
        self.metrics.set_journal_backlog(self.journal.backlog)

    async def trading_day_reset(self) -> None:
        self.engine.monitor.reset_trading_day()

    async def reconcile(self) -> None:
        await self.reconciler.run()
        self.protection.check()

    def _reconcile_after_reconnect(self) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return

        async def reconcile_then_recover() -> None:
            # Events were lost with the link: fills among them are asked for once it is back.
            await self.scheduler.jobs["reconcile"].run()
            await self.fill_recovery.run()

        self._reconnect_task = asyncio.create_task(
            reconcile_then_recover(), name="reconcile-after-reconnect"
        )

    def publish_state(self) -> None:
        self._publish_state()

    # --- status ------------------------------------------------------------------------------

    def stale_quotes(self) -> list[str]:
        return stale_quotes(self.quotes, self.broker, self.config.gateway.quotes.max_age_s)

    def status(self) -> dict[str, Any]:
        return service_status(self)
