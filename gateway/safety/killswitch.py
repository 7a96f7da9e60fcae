"""The kill switch: halt first, then cancel every open order at the broker, then report.

    halt (memory first: a failing disk never leaves the gateway trading)
      -> cancel_all at the broker, and each order it left open, again, a few times
      -> wait for the submits still on the wire (a halted gateway cancels each as it lands)
      -> cancel the orders whose fate is unknown, by client_order_id, and those whose answer
         was lost while the broker's own events showed them resting
      -> hand on what it could not settle: cancelled as soon as it is found
      -> flatten positions (when configured)

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


@dataclass(frozen=True, slots=True)
class InFlightOutcome:
    """What became of a submit that was on the wire when the kill switch fired."""

    client_order_id: str
    order: BrokerOrder | None  # the broker's order after any cancel; None if none was placed
    cancelled: bool = False  # cancelled at once because it landed after the halt
    cancel_error: str | None = None


InFlightWaiter = Callable[[float], Awaitable[tuple[list[InFlightOutcome], list[str]]]]


@dataclass
class KillReport:
    cancelled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    flattened: list[str] = field(default_factory=list)
    flatten_failed: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    halt_ms: float = 0.0

    def add_cancelled(self, order_id: str) -> None:
        if order_id not in self.cancelled:
            self.cancelled.append(order_id)
        self.failed.pop(order_id, None)


async def _nothing_in_flight(timeout_s: float) -> tuple[list[InFlightOutcome], list[str]]:
    return [], []


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
        in_flight: InFlightWaiter = _nothing_in_flight,
        unknown_orders: Callable[[], list[str]] = list,
        cancel_when_found: Callable[[str], None] = lambda client_order_id: None,
        in_flight_wait_s: float = 10.0,
        submit_flatten: Callable[[OrderRequest], Awaitable[BrokerOrder]] | None = None,
    ):
        self._halt = halt
        self._broker = broker
        self._on_order = on_order
        self._open_orders = open_orders
        self._flatten = flatten_positions
        self._retries = cancel_retries
        self._in_flight = in_flight
        self._unknown_orders = unknown_orders
        self._cancel_when_found = cancel_when_found
        self._in_flight_wait_s = in_flight_wait_s
        self._submit_flatten = submit_flatten or broker.submit
        self._lock = asyncio.Lock()

    async def kill(self, reason: str, *, by: str) -> KillReport:
        started = time.perf_counter()
        # Never raises for a full disk: halted in memory, written when it can be; cancel anyway.
        # The trigger marks the halt as a kill (requested_halt: kill_switch is implied).
        self._halt.halt(reason, HaltTrigger.KILL_SWITCH, by=by)
        report = KillReport(halt_ms=(time.perf_counter() - started) * 1000)
        async with self._lock:
            await self._cancel_everything(report)
            no_answer = await self._catch_in_flight(report)
            await self._cancel_unknown(report, no_answer)
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
                    ended = await self._ended(target)
                    if ended is None:
                        failed[oid] = str(exc)
                        continue
                    del failed[oid]
                    if ended.status is OrderStatus.CANCELED:
                        cancelled.append(oid)  # an earlier cancel whose answer was lost
                    else:
                        self._on_order(ended)  # it filled meanwhile: nothing to cancel
                    continue
                cancelled.append(oid)
                del failed[oid]
        for oid in cancelled:
            done = known.get(oid)
            if done is not None:
                # Cancelled orders leave the open list before the kill call returns.
                self._on_order(done.model_copy(update={"status": OrderStatus.CANCELED}))
        report.failed.update(failed)
        for oid in cancelled:
            report.add_cancelled(oid)

    async def _ended(self, order: BrokerOrder) -> BrokerOrder | None:
        """The order as the broker has it now, if it is no longer open (a cancel refused
        because it already ended is not a failure)."""
        try:
            now = await self._broker.get_order(order.client_order_id)
        except BrokerError:
            return None
        return now if now is not None and not now.is_open else None

    async def _catch_in_flight(self, report: KillReport) -> list[str]:
        """Submits on the wire when the halt began: each is cancelled as it lands. Returns the
        client_order_ids that came back without an order (refused, or their answer lost)."""
        done, waiting = await self._in_flight(self._in_flight_wait_s)
        no_answer = []
        for outcome in done:
            order = outcome.order
            if order is None:
                no_answer.append(outcome.client_order_id)
                continue
            if outcome.cancelled:
                report.add_cancelled(order.broker_order_id)
            elif outcome.cancel_error is not None and order.is_open:
                report.failed[order.broker_order_id] = outcome.cancel_error
        for coid in waiting:
            report.failed[coid] = (
                f"still on its way to the broker after {self._in_flight_wait_s:g}s: "
                "it is cancelled as soon as the broker answers"
            )
            self._cancel_when_found(coid)  # its answer may be lost too
        return no_answer

    async def _cancel_unknown(self, report: KillReport, no_answer: list[str]) -> None:
        """Orders whose submit answer was lost may rest at the broker: cancel them by id. One
        the broker's own event placed in the book meanwhile is no longer of unknown fate, but
        rests all the same."""
        tracked = {o.client_order_id: o for o in self._open_orders()}
        placed = [coid for coid in no_answer if coid in tracked]
        for coid in dict.fromkeys([*self._unknown_orders(), *placed]):
            order = tracked.get(coid)
            if order is None:
                try:
                    order = await self._broker.get_order(coid)
                except BrokerError as exc:
                    report.failed[coid] = (
                        f"order of unknown fate, look-up failed: {exc}; it is cancelled as soon "
                        "as it is found"
                    )
                    self._cancel_when_found(coid)
                    continue
            if order is None or not order.is_open:
                continue  # never placed, or already final (counted by cancel_all if it did)
            try:
                await self._broker.cancel(coid)
            except BrokerError as exc:
                report.failed[order.broker_order_id] = str(exc)
                continue
            self._on_order(order.model_copy(update={"status": OrderStatus.CANCELED}))
            report.add_cancelled(order.broker_order_id)

    async def _still_open(self) -> dict[str, list[str]]:
        """The orders left open after the cancels, by symbol: the broker's list, and the
        book's open orders too (all of them when the broker cannot list its own)."""
        left: dict[str, list[str]] = {}
        orders = list(self._open_orders())
        try:
            orders += await self._broker.open_orders()
        except BrokerError as exc:
            log.error("kill switch could not list open orders before flattening: %s", exc)
        for order in orders:
            if order.is_open and order.client_order_id not in left.get(order.symbol, []):
                left.setdefault(order.symbol, []).append(order.client_order_id)
        return left

    async def _flatten_positions(self, report: KillReport) -> None:
        try:
            positions = await self._broker.positions()
        except BrokerError as exc:
            report.flatten_failed["*"] = str(exc)
            return
        resting = await self._still_open()
        stamp = int(time.time() * 1000)
        for position in positions:
            if position.qty == 0:
                continue
            if position.symbol in resting:
                # A stop that would not cancel must not fire into a position closed under it
                # (it would open the other way): the position stays, with its stop, reported.
                report.flatten_failed[position.symbol] = (
                    f"orders still open at the broker ({', '.join(resting[position.symbol])}): "
                    "not flattened, so none of them can fire into a closed position"
                )
                continue
            request = OrderRequest(
                client_order_id=f"kill-{position.symbol}-{stamp}",
                symbol=position.symbol,
                side=Side.SELL if position.qty > 0 else Side.BUY,
                quantity=abs(position.qty),
            )
            try:
                order = await self._submit_flatten(request)
            except Exception as exc:  # a broker refusal, or an intent the journal cannot keep
                report.flatten_failed[position.symbol] = f"{type(exc).__name__}: {exc}"
                continue
            self._on_order(order)
            report.flattened.append(position.symbol)
