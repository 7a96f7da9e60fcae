"""The risk monitor: the equity marks of the trading day and the graduated risk state.

It measures equity, daily loss, drawdown and heat from the book and the quote book; an
emergency threshold halts the gateway, a limit breach latches REDUCE_ONLY until the next
trading-day reset. Marks (day-start and peak equity) and the latch are persisted in the journal,
so a restart the same trading day comes back with both; a restart after a missed reset catches
it up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from gateway.config import GatewayConfig
from gateway.ops.metrics import GatewayMetrics
from gateway.risk.book import Book
from gateway.risk.quotes import QuoteBook
from gateway.risk.state import (
    EquityMarks,
    RiskMeasures,
    RiskState,
    emergency_breach,
    limit_breach,
    measure,
    trading_day,
)
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal

log = logging.getLogger("gateway.risk")


class RiskMonitor:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        book: Book,
        quotes: QuoteBook,
        journal: Journal,
        halt: HaltManager,
        metrics: GatewayMetrics,
        clock: Callable[[], datetime],
    ):
        self._config = config
        self._risk = config.risk
        self._book = book
        self._quotes = quotes
        self._journal = journal
        self._halt = halt
        self._metrics = metrics
        self._clock = clock
        # Told after the risk state changed here (the service publishes it on the event stream).
        self.on_state: Callable[[], None] = lambda: None
        self._marks: EquityMarks | None = None
        self.reduce_only: str | None = None  # why the gateway is REDUCE_ONLY, while it is

    @property
    def state(self) -> RiskState:
        if self._halt.is_halted:
            return RiskState.HALTED
        return RiskState.REDUCE_ONLY if self.reduce_only else RiskState.ACTIVE

    @property
    def started(self) -> bool:
        return self._marks is not None

    @property
    def marks(self) -> EquityMarks:
        assert self._marks is not None, "risk monitor not started"
        return self._marks

    def equity(self) -> Decimal:
        return self._book.cash + self._book.market_value(self._quotes.marks())

    def measures(self) -> RiskMeasures:
        marks = self._quotes.marks()
        return measure(
            equity=self._book.cash + self._book.market_value(marks),
            marks=self.marks,
            at_risk=self._book.at_risk(marks, self._risk.risk_management.stop_loss_percent),
        )

    # --- the trading day ---------------------------------------------------------------------

    def restore(self) -> None:
        today = trading_day(self._clock(), self._config.gateway.schedule)
        stored = self._journal.get("equity_marks")
        marks = EquityMarks.from_json(stored) if stored else None
        if marks is None or marks.trading_day != today:
            self._start_day(today, marks)
        else:
            self.reduce_only = self._journal.get("reduce_only")
            self._marks = marks
        self.persist()

    def reset_trading_day(self) -> None:
        """The scheduled reset: a new trading day starts now, even when the job runs a moment
        before the clock's trading day turns; the peak carries over like at any new day."""
        self._start_day(trading_day(self._clock(), self._config.gateway.schedule), self._marks)
        self.persist()
        self.evaluate()

    def _start_day(self, today: date, previous: EquityMarks | None) -> None:
        """A new trading day (or the first start): it starts from the equity we see now, while
        the peak carries over: drawdown is measured from the all-time peak."""
        equity = self.equity()
        peak = max(previous.peak_equity, equity) if previous else equity
        self._marks = EquityMarks(today, equity, peak)
        self.reduce_only = None
        self._journal.put("reduce_only", None)
        self._journal.record_event("trading_day_reset", self._marks.to_json())

    def persist(self) -> None:
        if self._marks is not None:
            self._journal.put("equity_marks", self._marks.to_json())

    # --- evaluation --------------------------------------------------------------------------

    def evaluate(self) -> RiskMeasures:
        """Recompute the measures; halt on an emergency, latch REDUCE_ONLY on a limit breach."""
        measures = self.measures()
        marks = self.marks
        if measures.equity > marks.peak_equity:
            marks.peak_equity = measures.equity
        if self._halt.is_halted:
            return measures
        emergency = emergency_breach(measures, self._risk)
        if emergency is not None:
            self._halt.halt(
                emergency.describe("emergency"),
                HaltTrigger(emergency.trigger),
                by="risk",
                measure=float(emergency.measure),
                threshold=float(emergency.threshold),
            )
            self.persist()
            self._metrics.set_state(self.state.value)
            self.on_state()
            return measures
        breach = limit_breach(measures, self._risk)
        if breach is not None and self.reduce_only is None:
            self.reduce_only = breach.describe("limit")
            self._journal.put("reduce_only", self.reduce_only)
            self._journal.record_event(
                "state_transition",
                {
                    "from": "active",
                    "to": "reduce_only",
                    "trigger": breach.trigger,
                    "measure": float(breach.measure),
                    "threshold": float(breach.threshold),
                },
            )
            log.warning("risk state REDUCE_ONLY: %s", self.reduce_only)
            self.persist()
            self._metrics.set_state(self.state.value)
            self.on_state()
        return measures
