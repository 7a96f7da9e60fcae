"""What the service shows and publishes about itself: the risk limits in /v1/status, the
symbols whose quotes went stale, and the ``state`` events of the event stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from brokers.base import Broker
from gateway.config import GatewayConfig
from gateway.risk.quotes import QuoteBook
from gateway.safety.halt import HaltManager
from gateway.store.journal import Journal

if TYPE_CHECKING:
    from gateway.service.core import GatewayService


def risk_limits(config: GatewayConfig) -> dict[str, Any]:
    """Each risk measure's limit and emergency threshold (fractions), and the cooldown."""
    rm, em = config.risk.risk_management, config.risk.emergency
    limit = {
        "daily_loss": rm.max_daily_loss,
        "drawdown": rm.max_total_drawdown,
        "portfolio_heat": rm.max_portfolio_heat,
    }
    out: dict[str, Any] = {
        k: {"limit": float(v), "emergency": float(em.threshold(k))} for k, v in limit.items()
    }
    out["stop_loss_percent"] = float(rm.stop_loss_percent)
    out["resume_cooldown_s"] = em.resume_cooldown_s
    return out


def stale_quotes(quotes: QuoteBook, broker: Broker, max_age_s: float) -> list[str]:
    """Symbols whose quote is too old to price an order (all of them while the link is down):
    a quote that stops moving shows here, not only in a refused signal."""
    if not broker.connected:
        return quotes.symbols()
    return [s for s in quotes.symbols() if (quotes.age_s(s) or 0) > max_age_s]


class StatePublisher:
    """A ``state`` event on the stream when the risk state or the halt changed since the last
    one (and once at start)."""

    def __init__(
        self,
        *,
        journal: Journal,
        halt: HaltManager,
        state: Callable[[], str],
        reduce_only: Callable[[], str | None],
    ) -> None:
        self._journal, self._halt = journal, halt
        self._state, self._reduce_only = state, reduce_only
        self._published: dict[str, Any] | None = None

    def __call__(self) -> None:
        halt = self._halt.current
        payload: dict[str, Any] = {
            "state": self._state(),
            "halt": None
            if halt is None
            else {
                "reason": halt.reason,
                "trigger": halt.trigger.value,
                "since": halt.since.isoformat(),
                "resume_allowed_at": self._halt.summary_resume_at(),
                "kill_switch": halt.kill_switch,
            },
            "reduce_only": self._reduce_only(),
        }
        if payload != self._published:
            self._published = payload
            self._journal.record_state(payload)


def service_status(service: GatewayService) -> dict[str, Any]:
    """GET /v1/status: the gateway's state, risk against its limits, and its parts' health."""
    engine = service.engine
    measures = engine.measures() if engine.started else None
    failure = service.journal.failure
    return {
        "state": engine.state.value,
        "halt": service.halt.summary(),
        "reduce_only": engine.reduce_only_reason,
        "risk": measures.as_json() if measures else None,
        "limits": risk_limits(service.config),
        "failures": service.failures.status(),
        "orders": {
            "open": len(engine.book.orders),
            "in_flight": engine.sender.in_flight,
            "unknown": engine.unknown.pending,
        },
        "broker": {"name": service.broker.name, "connected": service.broker.connected},
        "quotes": {"stale": service.stale_quotes()},
        "protection": [
            row.as_json()
            for row in service.engine.book.protection(
                service.quotes.marks(), service.config.risk.risk_management.stop_loss_percent
            )
        ],
        "journal": {
            "writable": failure is None,
            "error": failure.error if failure else None,
            "since": failure.since.isoformat() if failure else None,
            "backlog": service.journal.backlog,
        },
        "mode": service.config.gateway.mode,
        "reconciliation": service.reconciler.status(),
        "jobs": service.scheduler.status(),
        **({"firm": service.firm.status()} if service.firm is not None else {}),
    }
