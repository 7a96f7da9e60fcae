"""Prometheus metrics of one gateway, on a registry the gateway owns.

Not the client library's global default registry: two gateways (or two tests) in one process
keep separate counts, and nothing registered by an imported library leaks into /metrics
unasked. Every metric is prefixed ``gateway_``; label values are the lower-case codes of the
design (decisions, reason codes, order statuses, halt triggers, failure types).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["HALT_TRIGGERS", "STATES", "GatewayMetrics"]

# The value of gateway_state for each risk state: ordered by severity, so `gateway_state >= 2`
# is "halted" and `max_over_time` shows the worst state of a period.
STATES: Mapping[str, int] = {"active": 0, "reduce_only": 1, "halted": 2}
HALT_TRIGGERS = (
    "manual",
    "kill_switch",
    "daily_loss",
    "drawdown",
    "portfolio_heat",
    "technical_failure",
    "reconciliation",
    "job_failure",
    "state_unreadable",
    "journal_failure",
    "firm_halt",
    "firm_unreachable",
)
NO_REASON = "none"

# From a fast in-process simulated submit (~50 µs) to a slow broker round trip (1 s).
SUBMIT_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
# A SQLite WAL append is tens of µs without fsync and up to tens of ms with one on a busy disk.
JOURNAL_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


def _label(value: object) -> str:
    """A label value from a str, a str enum, or an object with a ``code`` (a refusal reason)."""
    if type(value) is str:
        return value
    code = getattr(value, "code", None)
    if code is not None and not isinstance(value, str):
        value = code
    if isinstance(value, enum.Enum):
        value = value.value
    return str(value)


class GatewayMetrics:
    """The gateway's metrics and the methods the engine calls to update them."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        """``registry``: where to register (a new one when None).

        ``process_metrics``: also export the process's CPU, memory, file descriptors, GC and
        Python version, which the global registry would have had by default.
        """
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._declare_trading(self.registry)
        self._declare_safety(self.registry)
        self._declare_io(self.registry)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._start_known_series()

    def _declare_trading(self, r: CollectorRegistry) -> None:
        """Signals, decisions, orders, submit latency, quote ages."""
        self.signals = Counter(
            "gateway_signals",
            "Signals decided, by decision and first reason (none when accepted).",
            ["decision", "reason"],
            registry=r,
        )
        self.decision_reasons = Counter(
            "gateway_decision_reasons",
            "Every reason given in a decision (a rejection can give several).",
            ["decision", "reason"],
            registry=r,
        )
        self.orders = Counter(
            "gateway_orders", "Order status changes seen, by new status.", ["status"], registry=r
        )
        self.submit_latency = Histogram(
            "gateway_submit_latency_seconds",
            "Time of broker.submit, from call to acknowledgement.",
            buckets=SUBMIT_BUCKETS,
            registry=r,
        )
        self.quote_age = Gauge(
            "gateway_quote_age_seconds",
            "Age of the latest quote per symbol when last used or checked.",
            ["symbol"],
            registry=r,
        )

    def _declare_safety(self, r: CollectorRegistry) -> None:
        """Risk state, halts, failures, the kill switch."""
        self.state = Gauge(
            "gateway_state", "Risk state: 0 active, 1 reduce_only, 2 halted.", registry=r
        )
        self.state_current = Gauge(
            "gateway_state_current",
            "1 for the current risk state, 0 for the others.",
            ["state"],
            registry=r,
        )
        self.halts = Counter("gateway_halts", "Halts, by trigger.", ["trigger"], registry=r)
        self.failures = Counter(
            "gateway_failures", "Failures recorded, by failure type.", ["type"], registry=r
        )
        self.kill_switch = Counter("gateway_kill_switch", "Kill switch activations.", registry=r)

    def _declare_io(self, r: CollectorRegistry) -> None:
        """The broker link, the journal, reconciliation."""
        self.broker_connected = Gauge(
            "gateway_broker_connected", "1 when the broker connection is up.", registry=r
        )
        self.journal_write = Histogram(
            "gateway_journal_write_seconds",
            "Time of one durable journal write.",
            buckets=JOURNAL_BUCKETS,
            registry=r,
        )
        self.reconciliation_differences = Counter(
            "gateway_reconciliation_differences",
            "Differences between the journal and the broker found by reconciliation, by kind.",
            ["kind"],
            registry=r,
        )
        self.reconciliation_last_differences = Gauge(
            "gateway_reconciliation_last_differences",
            "Number of differences the last reconciliation run found.",
            registry=r,
        )
        self.reconciliation_last_run = Gauge(
            "gateway_reconciliation_last_run_timestamp_seconds",
            "Unix time of the last reconciliation run.",
            registry=r,
        )
        self.journal_writable = Gauge(
            "gateway_journal_writable",
            "1 while the journal writes, 0 after a write failed (disk full, I/O error).",
            registry=r,
        )
        self.journal_writable.set(1)
        self.journal_backlog = Gauge(
            "gateway_journal_backlog",
            "Events and order updates kept in memory until the journal writes again.",
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "gateway_event_loop_lag_seconds",
            "The event loop's worst lag over the last second: how late it woke a sleeping task.",
            registry=r,
        )

    def _start_known_series(self) -> None:
        # The labelled children the hot path uses, by label values: labels() checks and locks on
        # every call, a dict look-up does not. Children are never removed, so this stays true.
        self._signal_children: dict[tuple[str, str], Any] = {}
        self._reason_children: dict[tuple[str, str], Any] = {}
        self._order_children: dict[str, Any] = {}
        # Known label values start at 0, so rate() and absent-series alerts work from the first
        # scrape rather than from the first event.
        for trigger in HALT_TRIGGERS:
            self.halts.labels(trigger)
        self.set_state("active")
        self.set_broker_connected(False)

    def observe_decision(self, decision: str, reasons: Sequence[object] = ()) -> None:
        """One decided signal. ``reasons``: reason codes (or objects with a ``code``)."""
        labels = [_label(reason) for reason in reasons]
        decision = _label(decision)
        key = (decision, labels[0] if labels else NO_REASON)
        child = self._signal_children.get(key)
        if child is None:
            child = self._signal_children[key] = self.signals.labels(*key)
        child.inc()
        for reason in labels:
            key = (decision, reason)
            child = self._reason_children.get(key)
            if child is None:
                child = self._reason_children[key] = self.decision_reasons.labels(*key)
            child.inc()

    def observe_order_status(self, status: str) -> None:
        """An order entered ``status`` (new, accepted, filled, canceled, rejected, ...)."""
        name = _label(status)
        child = self._order_children.get(name)
        if child is None:
            child = self._order_children[name] = self.orders.labels(name)
        child.inc()

    def observe_submit_latency(self, seconds: float) -> None:
        """Duration of one broker.submit call."""
        self.submit_latency.observe(seconds)

    def set_quote_age(self, symbol: str, seconds: float) -> None:
        """Age of ``symbol``'s latest quote."""
        self.quote_age.labels(symbol).set(seconds)

    def set_state(self, state: str) -> None:
        """The risk state: active, reduce_only or halted (ValueError otherwise)."""
        name = _label(state)
        if name not in STATES:
            raise ValueError(f"unknown gateway state {name!r}; expected one of {list(STATES)}")
        self.state.set(STATES[name])
        for other in STATES:
            self.state_current.labels(other).set(1 if other == name else 0)

    def observe_halt(self, trigger: str) -> None:
        """A halt (including one recorded while already halted), by trigger."""
        self.halts.labels(_label(trigger)).inc()

    def observe_kill_switch(self) -> None:
        """One kill switch activation (its halt is observed separately)."""
        self.kill_switch.inc()

    def observe_failure(self, failure_type: str) -> None:
        """A recorded failure (strategy failure, broker_error, ...)."""
        self.failures.labels(_label(failure_type)).inc()

    def set_broker_connected(self, connected: bool) -> None:
        """Whether the broker connection is up."""
        self.broker_connected.set(1 if connected else 0)

    def observe_journal_write(self, seconds: float) -> None:
        """Duration of one durable journal write."""
        self.journal_write.observe(seconds)

    def set_journal_writable(self, writable: bool) -> None:
        """Whether the journal can write."""
        self.journal_writable.set(1 if writable else 0)

    def set_event_loop_lag(self, seconds: float) -> None:
        self.event_loop_lag.set(seconds)

    def set_journal_backlog(self, count: int) -> None:
        self.journal_backlog.set(count)

    def observe_reconciliation(
        self, differences: Mapping[str, int], *, at: float | None = None
    ) -> None:
        """One reconciliation run: count of differences per kind (empty when all agreed).

        ``at``: the run's Unix time (now by default).
        """
        for kind, count in differences.items():
            if count:
                self.reconciliation_differences.labels(_label(kind)).inc(count)
        self.reconciliation_last_differences.set(sum(differences.values()))
        if at is None:
            self.reconciliation_last_run.set_to_current_time()
        else:
            self.reconciliation_last_run.set(at)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for the /metrics route."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
