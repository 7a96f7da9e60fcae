"""Halt, kill and resume as the API and the CLI ask for them.

Stopping always answers with the halt in force, even on a full disk (the halt holds in memory
and is written as soon as it can be). Starting needs authority, the cooldown, the triggering
measure back under its threshold, and a journal that writes: a gateway halted because its
journal failed resumes only once a write succeeds again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.config import GatewayConfig
from gateway.ops.alerts import AlertSender
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.engine import Gateway
from gateway.risk.state import trigger_still_active
from gateway.safety.halt import HaltManager, HaltRecord, ResumeRefused
from gateway.safety.halt_state import HaltTrigger
from gateway.safety.killswitch import KillReport, KillSwitch
from gateway.store.journal import Journal


class Controls:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        engine: Gateway,
        halt: HaltManager,
        killswitch: KillSwitch,
        journal: Journal,
        alerts: AlertSender,
        metrics: GatewayMetrics,
        environ: Mapping[str, str],
        status: Callable[[], dict[str, Any]],
    ):
        self._config = config
        self._engine = engine
        self._halt = halt
        self._killswitch = killswitch
        self._journal = journal
        self._alerts = alerts
        self._metrics = metrics
        self._auth_code = environ.get("GATEWAY_RESUME_AUTH_CODE") or None
        self._status = status
        # A refusal from outside this gateway (the firm's halt): raises ResumeRefused.
        self.resume_guard: Callable[[], None] | None = None

    def halt(self, reason: str, *, by: str) -> dict[str, Any]:
        self._halt.halt(reason, HaltTrigger.MANUAL, by=by)
        return self._status()

    async def kill(self, reason: str, *, by: str) -> dict[str, Any]:
        report: KillReport = await self._killswitch.kill(reason, by=by)
        self._metrics.observe_kill_switch()
        self._journal.record_event(
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
        self._alerts.send(
            "kill",
            {
                "reason": reason,
                "by": by,
                "cancelled": len(report.cancelled),
                "failed": report.failed,
                "summary": self._halt.summary(),
            },
        )
        return {
            "cancelled": len(report.cancelled),
            "failed": [{"order_id": oid, "reason": why} for oid, why in report.failed.items()],
            "flattened": report.flattened,
            "elapsed_ms": round(report.elapsed_ms, 3),
            "halt_ms": round(report.halt_ms, 3),
            "status": self._status(),
        }

    def resume(self, *, by: str, force: bool, auth_code: str | None) -> dict[str, Any]:
        if self._halt.is_halted and self.resume_guard is not None:
            self.resume_guard()
        if self._halt.is_halted and self._journal.failure is not None and not self._journal.probe():
            # Not even a forced resume: nothing could be journaled, so every signal would fail.
            failure = self._journal.failure
            raise ResumeRefused(
                "journal_unavailable",
                f"the journal cannot write ({failure.error if failure else 'unknown'}): "
                "resume once writes succeed again",
            )
        self._halt.retry_persist()
        measures = self._engine.measures()
        risk = self._config.risk

        def still_active(record: HaltRecord) -> bool:
            return trigger_still_active(record.trigger.value, measures, risk)

        self._halt.resume(
            by=by,
            force=force,
            auth_code=auth_code,
            expected_auth_code=self._auth_code,
            trigger_active=still_active,
        )
        self._metrics.set_state(self._engine.state.value)
        return self._status()
