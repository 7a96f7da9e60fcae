"""The reconciliation job: at start, every ``reconcile_s``, and after the broker link returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from brokers.base import Broker, OrderStatus
from brokers.errors import BrokerError
from gateway.config import GatewayConfig
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.engine import Gateway
from gateway.pipeline.reconcile import Reconciliation, compare
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal

log = logging.getLogger("gateway.service")


class Reconciler:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        engine: Gateway,
        broker: Broker,
        journal: Journal,
        halt: HaltManager,
        metrics: GatewayMetrics,
        clock: Callable[[], datetime],
    ):
        self._tolerance = config.gateway.reconciliation.halt_tolerance
        self._engine = engine
        self._broker = broker
        self._journal = journal
        self._halt = halt
        self._metrics = metrics
        self._clock = clock
        self.last: Reconciliation | None = None
        self.last_with_differences: Reconciliation | None = None

    def status(self) -> dict[str, Any] | None:
        """The last run, and the last one that found differences (a later clean run must not
        hide what an earlier one corrected)."""
        if self.last is None:
            return None
        noted = self.last_with_differences
        return {**self.last.as_json(), "last_with_differences": noted and noted.as_json()}

    async def run(self) -> None:
        engine = self._engine
        since = engine.book.fill_seq  # the broker's answers are older than any fill after this
        orders = await self._broker.open_orders()
        positions = await self._broker.positions()
        account = await self._broker.account()
        for order in orders:
            if order.client_order_id in engine.unknown:
                engine.apply_order_update(order)  # an order of unknown fate: it is there
        result = compare(
            engine.book,
            orders,
            positions,
            marks=engine.quotes.marks(),
            equity=account.equity,
            at=self._clock().isoformat(),
            filled_meanwhile=engine.book.filled_since(since),
        )
        theirs = {o.client_order_id: o for o in orders}
        for coid in result.adopted:
            engine.apply_order_update(theirs[coid])
        engine.flush_order_updates()
        for coid in result.adopted:
            self._journal.mark_external(coid)
        await self._settle_lost(result)
        # Correct only what differed, and only where nothing filled since the broker answered
        # (its figure is older than the book there); the same for cash.
        filled_meanwhile = engine.book.filled_since(since)
        theirs_by_symbol = {p.symbol: p for p in positions}
        for difference in result.positions:
            symbol = difference["symbol"]
            if symbol not in filled_meanwhile:
                engine.book.correct_position(symbol, theirs_by_symbol.get(symbol))
        if not filled_meanwhile:
            engine.book.load_account(account)
        self._record(result)
        engine.evaluate_risk()

    async def _settle_lost(self, result: Reconciliation) -> None:
        """Ours that the broker no longer lists as open: ask what became of each."""
        engine = self._engine
        for coid in list(result.lost):
            tracked = engine.book.orders.get(coid)
            if tracked is None:
                continue
            try:
                now = await self._broker.get_order(coid)
            except BrokerError as exc:
                log.info("look-up of %s failed; reconciled next time: %s", coid, exc)
                result.lost.remove(coid)
                continue
            if now is not None and not now.is_open:
                engine.apply_order_update(now)  # it filled or was cancelled meanwhile
                result.lost.remove(coid)
                result.settled.append(coid)
            elif now is not None:
                result.lost.remove(coid)  # placed after the broker listed its open orders
            elif now is None:
                engine.apply_order_update(
                    tracked.order.model_copy(update={"status": OrderStatus.EXPIRED})
                )

    def _record(self, result: Reconciliation) -> None:
        self.last = result
        self._metrics.observe_reconciliation(
            {
                "adopted": len(result.adopted),
                "lost": len(result.lost),
                "positions": len(result.positions),
            }
        )
        if result.differences:
            self.last_with_differences = result
            self._journal.record_event("reconciliation", result.as_json())
            log.warning("reconciliation found %d differences", result.differences)
        if result.worst_fraction > self._tolerance:
            self._halt.halt(
                f"reconciliation: position difference {result.worst_fraction:.4%} of equity "
                f"exceeds {self._tolerance:.2%}",
                HaltTrigger.RECONCILIATION,
                by="reconciliation",
                measure=float(result.worst_fraction),
                threshold=float(self._tolerance),
            )
