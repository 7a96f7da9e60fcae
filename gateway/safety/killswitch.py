"""The kill switch: halt first (durably), then cancel every open order at the broker, then report.

Orders the broker fails to cancel are retried one by one and, if they still stand, listed in the
report: never silently dropped. With ``flatten_positions`` the positions are closed with market
orders that bypass the halt gate (and nothing else does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from brokers.base import Broker, BrokerOrder, OrderRequest, OrderStatus, Side
from brokers.errors import BrokerError
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger

log = logging.getLogger("gateway.safety.killswitch")


@dataclass
class KillReport:
    cancelled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    flattened: list[str] = field(default_factory=list)
    flatten_failed: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    halt_ms: float = 0.0


class KillSwitch:
    def __init__(
        self,
        *,
        halt: HaltManager,
        broker: Broker,
        on_order: Callable[[BrokerOrder], None],
        open_orders: Callable[[], list[BrokerOrder]],
        flatten_positions: bool,
        cancel_retries: int,
        submit_flatten: Callable[[OrderRequest], Awaitable[BrokerOrder]] | None = None,
    ):
        self._halt = halt
        self._broker = broker
        self._on_order = on_order
        self._open_orders = open_orders
        self._flatten = flatten_positions
        self._retries = cancel_retries
        self._submit_flatten = submit_flatten or broker.submit
        self._lock = asyncio.Lock()

    async def kill(self, reason: str, *, by: str) -> KillReport:
        started = time.perf_counter()
        # Never raises for a full disk: halted in memory, written when it can be; cancel anyway.
        self._halt.halt(reason, HaltTrigger.KILL_SWITCH, by=by, kill_switch=True)
        report = KillReport(halt_ms=(time.perf_counter() - started) * 1000)
        async with self._lock:
            await self._cancel_everything(report)
            if self._flatten:
                await self._flatten_positions(report)
        report.elapsed_ms = (time.perf_counter() - started) * 1000
        log.critical(
            "kill switch: %d cancelled, %d failed in %.1f ms",
            len(report.cancelled),
            len(report.failed),
            report.elapsed_ms,
            extra={"reason": reason, "by": by},
        )
        return report

    async def _cancel_everything(self, report: KillReport) -> None:
        known = {o.broker_order_id: o for o in self._open_orders()}
        try:
            result = await self._broker.cancel_all()
            cancelled, failed = list(result.cancelled), dict(result.failed)
        except BrokerError as exc:
            # cancel_all itself failed: fall back to one cancel per order we know of.
            cancelled, failed = [], {oid: str(exc) for oid in known}
        try:
            # The broker's own list also holds orders placed by hand outside the gateway.
            for order in await self._broker.open_orders():
                known.setdefault(order.broker_order_id, order)
                if order.broker_order_id not in cancelled:
                    failed.setdefault(order.broker_order_id, "still open after cancel_all")
        except BrokerError as exc:
            log.error("kill switch could not list open orders: %s", exc)
        for attempt in range(self._retries):
            if not failed:
                break
            await asyncio.sleep(0.05 * attempt)
            for oid in list(failed):
                target = known.get(oid)
                if target is None:
                    continue
                try:
                    await self._broker.cancel(target.client_order_id)
                except BrokerError as exc:
                    failed[oid] = str(exc)
                    continue
                cancelled.append(oid)
                del failed[oid]
        for oid in cancelled:
            done = known.get(oid)
            if done is not None:
                # Cancelled orders leave the open list before the kill call returns.
                self._on_order(done.model_copy(update={"status": OrderStatus.CANCELED}))
        report.cancelled = cancelled
        report.failed = failed

    async def _flatten_positions(self, report: KillReport) -> None:
        try:
            positions = await self._broker.positions()
        except BrokerError as exc:
            report.flatten_failed["*"] = str(exc)
            return
        stamp = int(time.time() * 1000)
        for position in positions:
            if position.qty == 0:
                continue
            request = OrderRequest(
                client_order_id=f"kill-{position.symbol}-{stamp}",
                symbol=position.symbol,
                side=Side.SELL if position.qty > 0 else Side.BUY,
                quantity=abs(position.qty),
            )
            try:
                order = await self._submit_flatten(request)
            except BrokerError as exc:
                report.flatten_failed[position.symbol] = str(exc)
                continue
            self._on_order(order)
            report.flattened.append(position.symbol)
