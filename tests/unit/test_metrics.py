"""GatewayMetrics: each metric rendered with its labels, instances independent."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.ops.metrics import GatewayMetrics


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    payload, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(payload.decode())
        for sample in family.samples
    }


def _value(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


class Status(str, enum.Enum):  # noqa: UP042 (the mixin whose str() is not the value)
    FILLED = "filled"


def test_every_metric_rendered_with_labels() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.observe_decision("accepted", [])
    m.observe_decision("rejected", ["quote_stale", "position_risk"])
    m.observe_decision("rejected", [Reason("portfolio_heat", "heat 0.3 > 0.25")])
    m.observe_decision("blocked", ["halted"])
    m.observe_order_status("new")
    m.observe_order_status(Status.FILLED)
    m.observe_submit_latency(0.00007)
    m.observe_submit_latency(0.3)
    m.set_quote_age("AAPL", 0.25)
    m.set_state("reduce_only")
    m.observe_halt("daily_loss")
    m.observe_kill_switch()
    m.observe_failure("broker_error")
    m.set_broker_connected(True)
    m.observe_journal_write(0.0004)
    m.observe_reconciliation({"missing_at_broker": 2, "unknown_at_broker": 1, "qty": 0}, at=1e9)

    v = _samples(m)

    def get(name: str, **labels: str) -> float | None:
        return v.get((name, frozenset(labels.items())))

    assert get("gateway_signals_total", decision="accepted", reason="none") == 1
    assert get("gateway_signals_total", decision="rejected", reason="quote_stale") == 1
    assert get("gateway_signals_total", decision="rejected", reason="portfolio_heat") == 1
    assert get("gateway_signals_total", decision="blocked", reason="halted") == 1
    assert get("gateway_decision_reasons_total", decision="rejected", reason="position_risk") == 1
    assert get("gateway_orders_total", status="new") == 1
    assert get("gateway_orders_total", status="filled") == 1
    assert get("gateway_submit_latency_seconds_count") == 2
    assert get("gateway_submit_latency_seconds_bucket", le="5e-05") == 0
    assert get("gateway_submit_latency_seconds_bucket", le="0.0001") == 1
    assert get("gateway_submit_latency_seconds_bucket", le="1.0") == 2
    assert get("gateway_quote_age_seconds", symbol="AAPL") == 0.25
    assert get("gateway_state") == 1
    assert get("gateway_state_current", state="reduce_only") == 1
    assert get("gateway_state_current", state="active") == 0
    assert get("gateway_state_current", state="halted") == 0
    assert get("gateway_halts_total", trigger="daily_loss") == 1
    assert get("gateway_halts_total", trigger="manual") == 0  # known triggers start at 0
    assert get("gateway_kill_switch_total") == 1
    assert get("gateway_failures_total", type="broker_error") == 1
    assert get("gateway_broker_connected") == 1
    assert get("gateway_journal_write_seconds_count") == 1
    assert get("gateway_journal_write_seconds_bucket", le="0.0005") == 1
    assert get("gateway_reconciliation_differences_total", kind="missing_at_broker") == 2
    assert get("gateway_reconciliation_differences_total", kind="unknown_at_broker") == 1
    assert get("gateway_reconciliation_differences_total", kind="qty") is None
    assert get("gateway_reconciliation_last_differences") == 3
    assert get("gateway_reconciliation_last_run_timestamp_seconds") == 1e9


def test_initial_values() -> None:
    m = GatewayMetrics(process_metrics=False)
    assert _value(m, "gateway_state") == 0
    assert _value(m, "gateway_state_current", state="active") == 1
    assert _value(m, "gateway_broker_connected") == 0
    assert _value(m, "gateway_kill_switch_total") == 0


def test_reconciliation_gauge_is_the_last_run() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.observe_reconciliation({"missing_at_broker": 2})
    m.observe_reconciliation({})
    assert _value(m, "gateway_reconciliation_last_differences") == 0
    assert _value(m, "gateway_reconciliation_differences_total", kind="missing_at_broker") == 2
    assert _value(m, "gateway_reconciliation_last_run_timestamp_seconds") > 1.7e9  # type: ignore[operator]


def test_halted_state_and_unknown_state() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.set_state("halted")
    assert _value(m, "gateway_state") == 2
    assert _value(m, "gateway_state_current", state="halted") == 1
    assert _value(m, "gateway_state_current", state="active") == 0
    with pytest.raises(ValueError, match="unknown gateway state"):
        m.set_state("paused")


def test_instances_are_independent_and_leave_the_global_registry_alone() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.observe_decision("accepted", [])
    a.observe_halt("manual")
    a.set_state("halted")
    assert _value(a, "gateway_signals_total", decision="accepted", reason="none") == 1
    assert _value(b, "gateway_signals_total", decision="accepted", reason="none") is None
    assert _value(b, "gateway_halts_total", trigger="manual") == 0
    assert _value(b, "gateway_state") == 0
    assert REGISTRY.get_sample_value("gateway_state") is None


def test_given_registry_is_used() -> None:
    registry = CollectorRegistry()
    m = GatewayMetrics(registry, process_metrics=False)
    m.observe_failure("timeout")
    assert registry.get_sample_value("gateway_failures_total", {"type": "timeout"}) == 1


def test_process_metrics_are_included_by_default() -> None:
    names = {name for name, _ in _samples(GatewayMetrics())}
    assert "python_info" in names
    assert "process_resident_memory_bytes" in names
