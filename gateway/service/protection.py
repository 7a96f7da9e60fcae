"""Lost protection: a position that a stop leg protected, left without it (the broker dropped
the leg, refused it after the entry filled, or it was cancelled under a position that stayed).

Never silence: each such position is an alert and a ``protection_lost`` journal event, once per
episode (again after it was covered, or closed, and lost once more). With
``risk_management.protective_stop: required`` it also halts (trigger ``protection_lost``): a
gateway that promises every position a stop does not trade on with one unprotected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from gateway.config import GatewayConfig
from gateway.ops.alerts import AlertSender
from gateway.risk.book import Book
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal

log = logging.getLogger("gateway.service")


class ProtectionWatch:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        book: Book,
        marks: Callable[[], dict[str, Decimal]],
        halt: HaltManager,
        alerts: AlertSender,
        journal: Journal,
    ):
        self._risk = config.risk.risk_management
        self._book = book
        self._marks = marks
        self._halt = halt
        self._alerts = alerts
        self._journal = journal
        self.unprotected: set[str] = set()  # symbols in a lost-protection episode now

    def check(self) -> list[str]:
        """Find positions left without their stop; returns the symbols newly found."""
        found = []
        rows = self._book.protection(self._marks(), self._risk.stop_loss_percent)
        held = {row.symbol for row in rows}
        for row in rows:
            covered = row.protected_qty == abs(row.qty)
            if covered or row.symbol not in self._book.guarded:
                self.unprotected.discard(row.symbol)
                continue
            if row.symbol in self.unprotected:
                continue
            self.unprotected.add(row.symbol)
            found.append(row.symbol)
            self._lost(row.symbol, row.qty, row.protected_qty)
        self.unprotected &= held
        return found

    def _lost(self, symbol: str, qty: Decimal, protected_qty: Decimal) -> None:
        detail = (
            f"position {symbol} {qty} is left without its stop "
            f"({protected_qty} of {abs(qty)} covered)"
        )
        log.critical("protection lost: %s", detail, extra={"symbol": symbol})
        payload = {"symbol": symbol, "qty": float(qty), "protected_qty": float(protected_qty)}
        self._journal.record_event("protection_lost", payload)
        self._alerts.send("protection_lost", {"summary": detail, **payload})
        if self._risk.protective_stop == "required":
            self._halt.halt(detail, HaltTrigger.PROTECTION_LOST, by="protection")
