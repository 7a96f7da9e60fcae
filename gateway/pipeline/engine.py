"""The engine: the signal pipeline, read top to bottom, and the parts it wires.

    signal -> idempotency -> halt gate -> strategy gate -> rate limit -> price from live quote
           -> [risk lock: reduce-only gate, pre-trade checks, reserve exposure]
           -> journal intent (committed) -> last gate -> broker.submit -> decision (committed)

A strategy's cancels and replaces of its orders: ``amend`` and ``replace`` (wired here).
The engine wires the parts; the parts do not import it. Every refusal is a Decision with reasons;
nothing is invented: an order without a usable quote is refused. A decision is answered only
once it is durable; a journal that cannot write answers JournalUnavailable (HTTP 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from brokers.base import Broker, BrokerOrder, OrderRequest, utcnow
from gateway.config import GatewayConfig
from gateway.models import DecisionKind, Reason, Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.admission import Admission, admit
from gateway.pipeline.amend import Cancels, OrderLocks
from gateway.pipeline.brackets import Legs, leg_requests, roles
from gateway.pipeline.broker_events import BrokerEvents
from gateway.pipeline.conclusion import Conclusion
from gateway.pipeline.firm_gate import ExposureGate, release_both, reserve_outside
from gateway.pipeline.flatten import send_flatten
from gateway.pipeline.gates import Gates
from gateway.pipeline.idempotency import Answer, Decided, SignalRecord
from gateway.pipeline.ids import body_hash, client_order_id, exact_body, order_request
from gateway.pipeline.legs import LegKeeper
from gateway.pipeline.order_views import OrderViews
from gateway.pipeline.quoting import snapshot_quote, unpriced_reasons
from gateway.pipeline.ratelimit import TokenBucket
from gateway.pipeline.recording import DecisionRecorder
from gateway.pipeline.recovery import resolve_undecided
from gateway.pipeline.replace import Replaces
from gateway.pipeline.restore import (
    load_from_broker,
    quote_held_symbols,
    rebase_on_broker,
    restore_decisions,
)
from gateway.pipeline.sender import OrderSender
from gateway.pipeline.settle import UnknownOrders
from gateway.risk.book import Book, Reservation
from gateway.risk.monitor import RiskMonitor
from gateway.risk.quotes import PricingRefusal, QuoteBook
from gateway.risk.state import EquityMarks, RiskMeasures, RiskState
from gateway.safety.failures import FailureTracker
from gateway.safety.halt import HaltManager
from gateway.store.journal import Journal

log = logging.getLogger("gateway.pipeline.engine")

ZERO = Decimal(0)


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        broker: Broker,
        journal: Journal,
        halt: HaltManager,
        failures: FailureTracker,
        quotes: QuoteBook,
        metrics: GatewayMetrics,
        clock: Callable[[], datetime] = utcnow,
        lookups: Broker | None = None,
    ):
        """``broker`` is the retry layer over the adapter (brokers.retrying): it alone turns a
        lost submit answer into AnswerUnknown. ``lookups``, the adapter itself, is what the
        settling of orders of unknown fate asks (it has its own backoff: one layer each)."""
        self.config = config
        self.risk = config.risk
        self.broker = broker
        self.journal = journal
        self.halt = halt
        self.failures = failures
        self.quotes = quotes
        self.metrics = metrics
        self.book = Book()
        self._lock = asyncio.Lock()
        self._rate = TokenBucket(float(self.risk.pre_trade.max_orders_per_second))
        self.signals = SignalRecord(journal, durable=self._durable, order_of=self._order_of)
        self._bp_snapshot = (ZERO, ZERO, ZERO)  # buying power, cash, open buys at last sync
        self._tasks: list[asyncio.Task[None]] = []
        self.exposure_gate: ExposureGate | None = None  # the firm's limit, set by the service
        self.monitor = RiskMonitor(
            config,
            book=self.book,
            quotes=quotes,
            journal=journal,
            halt=halt,
            metrics=metrics,
            clock=clock,
        )
        self._wire_order_flow(lookups or broker)
        self.recorder = DecisionRecorder(journal, metrics)
        self.views = OrderViews(journal, self.book, self.flush_order_updates)
        self.gates = Gates(halt=halt, failures=failures, rate=self._rate)
        self._wire_amendments()
        self.ready = False
        self.shutting_down = False

    def _wire_order_flow(self, lookups: Broker) -> None:
        """Broker events, orders of unknown fate, sending and the accepted decision."""
        broker, journal, metrics = self.broker, self.journal, self.metrics
        self.events = BrokerEvents(
            broker=broker,
            book=self.book,
            quotes=self.quotes,
            journal=journal,
            metrics=metrics,
            evaluate_risk=self.evaluate_risk,
        )
        self.unknown = UnknownOrders(lookups, apply_order=self.events.apply, absent=self._absent)
        self.legs = LegKeeper(broker=broker, book=self.book, apply_order=self.events.apply)
        self.events.on_fill = self.legs.after_fill
        self.events.on_order = self.unknown.settle
        self.sender = OrderSender(
            broker=broker,
            journal=journal,
            halt=self.halt,
            failures=self.failures,
            metrics=metrics,
            durable=self._durable,
            release=lambda coid: release_both(self.book, self.exposure_gate, coid),
            apply_order=self.events.apply,
            on_unknown=self._fate_unknown,
        )
        self.conclusion = Conclusion(
            journal=journal,
            failures=self.failures,
            config=self.config,
            apply_order=lambda order, price: self.events.apply(
                order, valued_at=price, record=False
            ),
        )

    def _wire_amendments(self) -> None:
        """Cancels and replaces of the orders strategies sent (one lock per order)."""
        locks = OrderLocks()
        broker, journal, book = self.broker, self.journal, self.book
        self.cancels = Cancels(
            broker=broker,
            journal=journal,
            book=book,
            views=self.views,
            locks=locks,
            apply_order=self.apply_order_update,
            unknown=self.unknown,
            cancel_when_found=self.unknown.cancel_when_found,
        )
        self.replaces = Replaces(
            broker=broker,
            journal=journal,
            book=book,
            quotes=self.quotes,
            risk=self.risk,
            views=self.views,
            locks=locks,
            signals=self.signals,
            gates=self.gates,
            recorder=self.recorder,
            risk_lock=self._lock,
            durable=self._durable,
            may_send=self.sender.may_send,
            buying_power=self.buying_power,
            reduce_only=lambda: self.monitor.reduce_only,
            shutting_down=lambda: self.shutting_down,
            snapshot_quote=self._snapshot_quote,
            apply_order=self.apply_order_update,
            hold_replaced=lambda order, price: self.events.apply(
                order, valued_at=price, record=False
            ),
        )

    # --- state -------------------------------------------------------------------------------

    @property
    def state(self) -> RiskState:
        return self.monitor.state

    @property
    def started(self) -> bool:
        """True once the equity marks are known (after start)."""
        return self.monitor.started

    @property
    def reduce_only_reason(self) -> str | None:
        return self.monitor.reduce_only

    @property
    def marks(self) -> EquityMarks:
        return self.monitor.marks

    def equity(self) -> Decimal:
        return self.monitor.equity()

    def measures(self) -> RiskMeasures:
        return self.monitor.measures()

    def evaluate_risk(self) -> RiskMeasures:
        return self.monitor.evaluate()

    def buying_power(self) -> Decimal:
        """The broker's figure at the last sync, moved by our own fills and orders since."""
        bp, cash_then, open_then = self._bp_snapshot
        return bp + (self.book.cash - cash_then) - (self.book.open_buy_notional() - open_then)

    def apply_order_update(self, order: BrokerOrder) -> None:
        self.unknown.settle(order)
        self.events.apply(order)

    def flush_order_updates(self) -> None:
        self.events.flush()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, restore, sync with the broker; ready only when all of that is done."""
        self.halt.restore()
        await self.broker.connect()
        account, open_at_broker = await load_from_broker(self.broker, self.journal, self.book)
        self.monitor.restore()
        self.signals.restore(restore_decisions(self.journal, self.book, self.unknown.add))
        recovered = await resolve_undecided(
            self.journal, self.broker, self.book, halt=self.halt, on_unknown=self.unknown.add
        )
        self.signals.restore(recovered)
        rebase_on_broker(self.book, open_at_broker, self.unknown, self.journal)
        self._bp_snapshot = (account.buying_power, self.book.cash, self.book.open_buy_notional())
        await quote_held_symbols(self.broker, self.book, self.quotes)
        held = set(self.book.holdings) | {o.symbol for o in self.book.open_orders()}
        if held:
            self.broker.subscribe_quotes(sorted(held))
        self._tasks = [
            asyncio.create_task(self.events.consume(), name="broker-events"),
            asyncio.create_task(self.unknown.run(), name="unknown-orders"),
        ]
        self.evaluate_risk()
        self.metrics.set_broker_connected(self.broker.connected)
        self.metrics.set_state(self.state.value)
        self.ready = self.events.ready = True

    async def stop(self) -> None:
        self.ready = self.events.ready = False
        self.shutting_down = self.sender.stopping = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.flush_order_updates()
        self.monitor.persist()
        await self.broker.close()

    def _fate_unknown(self, request: OrderRequest) -> None:
        """A submit's answer was lost; the broker's own event may have told its fate already
        (it arrived while the look-ups failed): then there is nothing left to settle."""
        coid = request.client_order_id
        if coid in self.book.orders or coid in self.book.final_fills:
            return
        self.unknown.add(request)

    def _absent(self, client_order_id: str, why: str) -> None:
        release_both(self.book, self.exposure_gate, client_order_id)
        self.journal.record_order_status(client_order_id, "rejected", why)

    # --- the pipeline ------------------------------------------------------------------------

    async def submit_signal(self, signal: Signal) -> Answer:
        """Decide on a signal. A replay answers the first decision, exactly; the same signal_id
        with another body is SignalConflict, even while the first is still being decided."""
        digest = body_hash(signal)
        return await self.signals.answer(
            signal.signal_id, digest, lambda: self._decide(signal, digest)
        )

    async def flatten(self, request: OrderRequest) -> BrokerOrder:
        """The kill switch closing a position (see ``pipeline.flatten``)."""
        return await send_flatten(
            request, journal=self.journal, broker=self.broker, apply=self.apply_order_update
        )

    def _order_of(self, signal_id: str) -> BrokerOrder | None:
        tracked = self.book.orders.get(client_order_id(signal_id))
        return tracked.order if tracked else None

    async def _decide(self, signal: Signal, digest: str) -> Decided:
        started = time.perf_counter()
        body = exact_body(signal)
        refusal = self.gates.check(signal, shutting_down=self.shutting_down)
        if refusal is not None:
            return self.recorder.refused(signal, digest, body, refusal, started)
        if self.quotes.get(signal.symbol) is None:
            await self._snapshot_quote(signal.symbol)
        priced = self.quotes.price_order(
            signal.symbol, signal.side, signal.order_type, signal.limit_price, signal.stop_price
        )
        if isinstance(priced, PricingRefusal):
            reasons = unpriced_reasons(priced, signal, self.risk.pre_trade.max_order_quantity)
            return self.recorder.refused(
                signal, digest, body, (DecisionKind.REJECTED, reasons), started
            )
        async with self._lock:
            admission = self._admit(signal, priced)
            if admission.refusal is not None:
                return self.recorder.refused(
                    signal, digest, body, admission.refusal, started, admission.risk
                )
            request = order_request(signal)
            legs = leg_requests(request, admission.protection)
            self.book.add_legs(roles(legs))
            self.book.reserve(
                Reservation(
                    request.client_order_id,
                    signal.symbol,
                    signal.side,
                    signal.quantity,
                    priced.value,
                    admission.protection.stop_loss,
                )
            )
        outside = await reserve_outside(
            self.exposure_gate, self.book, request, priced.value, reduces=admission.reduces
        )
        if outside is not None:
            return self.recorder.refused(signal, digest, body, outside, started, admission.risk)
        return await self._send(signal, digest, body, request, admission, started, legs)

    def _admit(self, signal: Signal, priced: object) -> Admission:
        return admit(
            signal,
            priced,  # type: ignore[arg-type]
            book=self.book,
            quotes=self.quotes,
            buying_power=self.buying_power(),
            risk=self.risk,
            reduce_only=self.monitor.reduce_only,
        )

    async def _send(
        self,
        signal: Signal,
        digest: str,
        body: str,
        request: OrderRequest,
        admission: Admission,
        started: float,
        legs: Legs,
    ) -> Decided:
        sender = self.sender
        await sender.make_durable(
            request,
            lambda: self.journal.record_intent(
                signal_id=signal.signal_id,
                body_hash=digest,
                body=body,
                strategy=signal.strategy,
                symbol=signal.symbol,
                order=request,
                valued_at=str(admission.price.value),
                defer=True,
                legs=legs,
            ),
        )
        why_not = sender.may_send()
        if why_not is not None:
            sender.not_sent(request, why_not.message)
            for leg, _ in legs:
                self.journal.record_order_status(leg.client_order_id, "canceled", why_not.message)
            reasons = [why_not]
            return self.recorder.refused_after_intent(
                signal, (DecisionKind.BLOCKED, reasons), started, admission.risk
            )
        result = await sender.send(request, signal.strategy, legs)
        if result.order is None and not result.unknown:
            assert result.code is not None
            reasons = [Reason(code=result.code, message=result.message)]
            return self.recorder.refused_after_intent(
                signal, (DecisionKind.REJECTED, reasons), started, admission.risk
            )
        decided = self.conclusion.accepted(signal, request, admission, result, legs)
        self.recorder.observe(signal, DecisionKind.ACCEPTED, [], started)
        return decided

    async def _durable(self, ticket: int) -> None:
        """Make the writes of ``ticket``'s group durable: committed on the loop's next turn,
        with the writes of every signal that reached this point meanwhile (group commit).
        Always a turn, even alone: signals run without yielding until they await, so waiting
        is what lets the others in flight join the group."""
        await self.journal.commit(ticket)

    async def _snapshot_quote(self, symbol: str) -> None:
        await snapshot_quote(self.broker, self.quotes, symbol)
