"""Scheduled jobs on APScheduler: risk sweep, reconciliation, trading-day reset.

Each job's failure is logged and counted; a job that fails ``job_failure_threshold`` times in a
row halts the gateway (trigger ``job_failure``) rather than leaving it blind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.config import ScheduleSettings

log = logging.getLogger("gateway.ops.scheduler")

Job = Callable[[], Awaitable[None]]


class JobRunner:
    """Runs one job, counting failures; calls ``on_stuck`` once a streak reaches the threshold."""

    def __init__(
        self,
        name: str,
        job: Job,
        *,
        threshold: int,
        on_stuck: Callable[[str, str], None],
        on_failure: Callable[[str], object] | None = None,
    ):
        self.name = name
        self._job = job
        self._threshold = threshold
        self._on_stuck = on_stuck
        self._on_failure = on_failure
        self.consecutive_failures = 0
        self.total_failures = 0
        self.last_error: str | None = None
        self.last_run: datetime | None = None

    async def run(self) -> None:
        try:
            await self._job()
        except Exception as exc:
            self.consecutive_failures += 1
            self.total_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed (%d in a row)", self.name, self.consecutive_failures)
            if self._on_failure is not None:
                self._on_failure(self.name)
            if self.consecutive_failures == self._threshold:
                self._on_stuck(
                    self.name,
                    f"job {self.name} failed {self.consecutive_failures} times in a row: "
                    f"{self.last_error}",
                )
            return
        self.consecutive_failures = 0
        self.last_run = datetime.now(ZoneInfo("UTC"))

    def status(self) -> dict[str, object]:
        return {
            "consecutive_failures": self.consecutive_failures,
            "total_failures": self.total_failures,
            "last_error": self.last_error,
            "last_run": self.last_run.isoformat() if self.last_run else None,
        }


class GatewayScheduler:
    def __init__(
        self,
        settings: ScheduleSettings,
        *,
        risk_sweep: Job,
        reconcile: Job,
        trading_day_reset: Job,
        on_stuck: Callable[[str, str], None],
        on_failure: Callable[[str], object] | None = None,
    ):
        self._scheduler = AsyncIOScheduler(timezone=ZoneInfo(settings.timezone))
        threshold = settings.job_failure_threshold
        self.jobs = {
            name: JobRunner(
                name, job, threshold=threshold, on_stuck=on_stuck, on_failure=on_failure
            )
            for name, job in (
                ("risk_sweep", risk_sweep),
                ("reconcile", reconcile),
                ("trading_day_reset", trading_day_reset),
            )
        }
        self._settings = settings

    def start(self) -> None:
        s = self._settings
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self._scheduler.add_job(
            self.jobs["risk_sweep"].run,
            IntervalTrigger(seconds=s.risk_sweep_s),
            id="risk_sweep",
            **common,
        )
        self._scheduler.add_job(
            self.jobs["reconcile"].run,
            IntervalTrigger(seconds=s.reconcile_s),
            id="reconcile",
            **common,
        )
        reset = s.trading_day_reset
        self._scheduler.add_job(
            self.jobs["trading_day_reset"].run,
            CronTrigger(
                hour=reset.hour,
                minute=reset.minute,
                second=reset.second,
                timezone=ZoneInfo(s.timezone),
            ),
            id="trading_day_reset",
            **common,
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def status(self) -> dict[str, object]:
        return {name: runner.status() for name, runner in self.jobs.items()}
