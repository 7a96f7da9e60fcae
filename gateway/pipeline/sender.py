"""Sending one admitted order: intent durable, last gate, broker, and what its answer means.

    journal the intent -> commit -> [halted meanwhile? not sent] -> broker.submit
        -> placed   : halted while it was on the wire? cancelled at once -> accepted
        -> rejected : the broker said no                                 -> rejected
        -> unknown  : the answer was lost and no look-up settled it      -> accepted, pending_submit
        -> not sent : the broker was unreachable and the order certainly did not land -> rejected

Nothing reaches the broker without its intent committed. A reservation is released on every
path that does not leave an order (or an order of unknown fate) at the broker. Every submit in
flight is registered, so the kill switch can wait for it and count what it cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from brokers.base import SHARED_COMMIT, Broker, BrokerOrder, OrderRequest, OrderStatus
from brokers.errors import AnswerUnknown, BrokerError
from brokers.retrying import submit_bracket
from gateway.models import Reason, ReasonCode
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.brackets import STOP_LOSS, TAKE_PROFIT, Legs, leg_of
from gateway.safety.failures import FailureTracker, FailureType
from gateway.safety.halt import HaltManager
from gateway.safety.killswitch import InFlightOutcome
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.sender")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The broker's answer as the pipeline needs it for the decision."""

    order: BrokerOrder | None
    code: ReasonCode | None = None  # why there is no order, or a note on an accepted one
    message: str = ""
    unknown: bool = False  # the order's fate is unknown (pending_submit)
    legs: tuple[BrokerOrder, ...] = ()  # a bracket's legs as the broker placed them


def _may_have_landed(exc: BrokerError) -> bool:
    """Only the retry layer's AnswerUnknown says an order may rest at the broker unconfirmed:
    it raises any other error only when the order certainly did not land (its look-up found
    nothing, or the request never left)."""
    return isinstance(exc, AnswerUnknown)


class OrderSender:
    def __init__(
        self,
        *,
        broker: Broker,
        journal: Journal,
        halt: HaltManager,
        failures: FailureTracker,
        metrics: GatewayMetrics,
        durable: Callable[[int], Awaitable[None]],
        release: Callable[[str], None],
        apply_order: Callable[[BrokerOrder], None],
        on_unknown: Callable[[OrderRequest], None],
    ):
        self._broker = broker
        self._journal = journal
        self._halt = halt
        self._failures = failures
        self._metrics = metrics
        self._durable = durable
        self._release = release
        self._apply_order = apply_order
        self._on_unknown = on_unknown
        self._in_flight: dict[str, asyncio.Future[InFlightOutcome]] = {}
        self.stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def make_durable(self, request: OrderRequest, write_intent: Callable[[], int]) -> None:
        """Journal and commit the intent; on failure the reservation goes and nothing is sent."""
        try:
            await self._durable(write_intent())
        except BaseException:
            self._release(request.client_order_id)
            raise

    def may_send(self) -> Reason | None:
        """The last gate, after the intent is durable: why the order must not leave now."""
        current = self._halt.current  # the halt in force; None while trading
        if current is not None:
            what = f"{current.trigger.value}: {current.reason}"
            return Reason(
                code=ReasonCode.HALTED,
                message=f"trading halted while the signal was being decided ({what}): not sent",
            )
        if self.stopping:
            return Reason(
                code=ReasonCode.SHUTTING_DOWN, message="the gateway is shutting down: not sent"
            )
        return None

    def not_sent(self, request: OrderRequest, why: str) -> None:
        self._release(request.client_order_id)
        self._journal.record_order_status(request.client_order_id, "canceled", why)

    async def send(
        self, request: OrderRequest, strategy: str, legs: Legs | None = None
    ) -> SendResult:
        coid = request.client_order_id
        flight: asyncio.Future[InFlightOutcome] = asyncio.get_running_loop().create_future()
        self._in_flight[coid] = flight
        result = SendResult(None)
        outcome = InFlightOutcome(coid, None)
        # This caller awaits its answer like any other: the broker may share one commit among
        # the signals that reach it in the same loop turn (see brokers.base.SHARED_COMMIT).
        shared = SHARED_COMMIT.set(True)
        try:
            started = time.perf_counter()
            result = await self._submit(request, strategy, legs or [])
            self._metrics.observe_submit_latency(time.perf_counter() - started)
            placed_legs = result.legs
            if result.order is not None and result.order.is_open and self._halt.is_halted:
                result, outcome = await self._cancel_at_once(result.order)
            else:
                outcome = InFlightOutcome(coid, result.order)
            if placed_legs and self._legs_must_go(result.order):
                # A bracket that landed after the kill's cancel_all: its legs must not rest either
                # (an entry that filled on landing leaves them working).
                legs_now = tuple([await self._cancel_leg(leg) for leg in placed_legs])
                result = dataclasses.replace(result, legs=legs_now)
            return result
        finally:
            SHARED_COMMIT.reset(shared)
            del self._in_flight[coid]
            flight.set_result(outcome)

    async def _submit(self, request: OrderRequest, strategy: str, legs: Legs) -> SendResult:
        coid = request.client_order_id
        try:
            if not legs:
                return SendResult(await self._broker.submit(request))
            placed = await submit_bracket(
                self._broker, request, leg_of(legs, STOP_LOSS), leg_of(legs, TAKE_PROFIT)
            )
            for placed_leg in placed[1:]:
                self._apply_order(placed_leg)
            return SendResult(placed[0], legs=tuple(placed[1:]))
        except BrokerError as exc:
            if not _may_have_landed(exc):
                for leg, _ in legs:
                    self._journal.record_order_status(
                        leg.client_order_id, "rejected", f"entry not placed: {exc}"
                    )
                return self._refused(request, strategy, exc)
            log.warning("submit answer unknown: %s", exc, extra={"client_order_id": coid})
        except Exception:
            # An adapter that failed in a way it did not translate: the request may have left.
            log.exception("submit failed unexpectedly", extra={"client_order_id": coid})
        # The order may rest at the broker: it keeps its reservation and is settled later.
        self._on_unknown(request)
        return SendResult(
            None,
            ReasonCode.BROKER_ANSWER_UNKNOWN,
            "the broker's answer was lost and the order could not be looked up yet: its "
            "fate follows in /v1/orders once a look-up or reconciliation settles it",
            unknown=True,
        )

    def _refused(self, request: OrderRequest, strategy: str, exc: BrokerError) -> SendResult:
        """No order at the broker: it said no, or it certainly never got the order."""
        coid = request.client_order_id
        self._release(coid)
        message = f"broker: {exc}"
        self._journal.record_order_status(coid, "rejected", message)
        if exc.transient:
            # The broker could not be reached: a failure of the strategy's path to market.
            self._failures.record_failure(
                strategy, request.symbol, message, FailureType.BROKER_ERROR
            )
            self._journal.put("failures", self._failures.snapshot())
            return SendResult(None, ReasonCode.BROKER_UNAVAILABLE, message)
        return SendResult(None, ReasonCode.BROKER_REJECTED, message)

    async def _cancel_at_once(self, order: BrokerOrder) -> tuple[SendResult, InFlightOutcome]:
        """The order came back after a halt began: it must not rest at the broker."""
        coid = order.client_order_id
        self._apply_order(order)
        try:
            await self._broker.cancel(coid)
        except BrokerError as exc:
            return await self._cancel_failed(order, f"cancel failed: {exc}")
        cancelled = order.model_copy(update={"status": OrderStatus.CANCELED})
        self._apply_order(cancelled)
        log.warning("order came back after a halt: cancelled", extra={"client_order_id": coid})
        note = "trading halted while the order was on its way to the broker: cancelled at once"
        return (
            SendResult(cancelled, ReasonCode.HALTED, note),
            InFlightOutcome(coid, cancelled, cancelled=True),
        )

    def _legs_must_go(self, entry: BrokerOrder | None) -> bool:
        """After a kill every order goes, legs included. After another halt, legs that protect
        a fill stay: a halt stops new risk, it does not strip a position of its stop."""
        current = self._halt.current
        if current is None:
            return False
        return current.kill_switch or entry is None or entry.filled_quantity == 0

    async def _cancel_leg(self, leg: BrokerOrder) -> BrokerOrder:
        """A leg of a bracket that came back after a halt, cancelled if it is still open."""
        if not leg.is_open:
            return leg
        try:
            await self._broker.cancel(leg.client_order_id)
        except BrokerError as exc:
            try:
                now = await self._broker.get_order(leg.client_order_id)
            except BrokerError:
                now = None
            if now is not None and not now.is_open:
                self._apply_order(now)
                return now
            log.error(
                "bracket leg came back after a halt and could not be cancelled: %s",
                exc,
                extra={"client_order_id": leg.client_order_id},
            )
            return leg
        cancelled = leg.model_copy(update={"status": OrderStatus.CANCELED})
        self._apply_order(cancelled)
        return cancelled

    async def _cancel_failed(
        self, order: BrokerOrder, why: str
    ) -> tuple[SendResult, InFlightOutcome]:
        """The cancel failed: perhaps because it is final already (a cancel_all got there
        first, or it filled). Only an order still open at the broker is a failure."""
        try:
            now = await self._broker.get_order(order.client_order_id)
        except BrokerError:
            now = None
        if now is not None and not now.is_open:
            self._apply_order(now)
            note = f"trading halted while the order was on its way; it is {now.status.value}"
            return (
                SendResult(now, ReasonCode.HALTED, note),
                InFlightOutcome(now.client_order_id, now),
            )
        log.error(
            "order came back after a halt and could not be cancelled: %s",
            why,
            extra={"client_order_id": order.client_order_id},
        )
        note = f"trading halted while the order was on its way; cancelling it failed ({why})"
        return (
            SendResult(order, ReasonCode.HALTED, note),
            InFlightOutcome(order.client_order_id, order, cancel_error=why),
        )

    async def settle_in_flight(self, timeout_s: float) -> tuple[list[InFlightOutcome], list[str]]:
        """Wait for every submit on the wire (the kill switch): what came of each, and the
        client_order_ids still in flight when ``timeout_s`` ran out."""
        flights = dict(self._in_flight)
        if not flights:
            return [], []
        await asyncio.wait(list(flights.values()), timeout=timeout_s)
        done = [f.result() for f in flights.values() if f.done()]
        waiting = [coid for coid, f in flights.items() if not f.done()]
        return done, waiting
