"""The engine: the signal pipeline, read top to bottom, and the parts it wires.

    signal -> idempotency -> halt gate -> strategy gate -> rate limit -> price from live quote
           -> [risk lock: reduce-only gate, pre-trade checks, reserve exposure]
           -> journal intent (committed) -> last gate -> broker.submit -> decision (committed)

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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from brokers.base import Broker, BrokerOrder, OrderRequest, assemble, utcnow
from brokers.errors import BrokerError
from gateway.config import GatewayConfig
from gateway.errors import SignalConflict
from gateway.models import Decision, DecisionKind, DecisionRisk, Reason, ReasonCode, Signal
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.admission import Admission, admit
from gateway.pipeline.broker_events import BrokerEvents
from gateway.pipeline.conclusion import Conclusion
from gateway.pipeline.ids import body_hash, client_order_id, exact_body
from gateway.pipeline.ratelimit import TokenBucket
from gateway.pipeline.recovery import resolve_undecided
from gateway.pipeline.sender import OrderSender
from gateway.pipeline.settle import UnknownOrders
from gateway.risk.book import Book, Reservation
from gateway.risk.monitor import RiskMonitor
from gateway.risk.quotes import PricingRefusal, QuoteBook
from gateway.risk.state import EquityMarks, RiskMeasures, RiskState
from gateway.safety.failures import FailureTracker
from gateway.safety.halt import HaltManager
from gateway.store.journal import Journal, JournalUnavailable

log = logging.getLogger("gateway.pipeline.engine")

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision's JSON as answered, and whether it is the replay of an earlier one."""

    decision_json: str
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class _Decided:
    decision_json: str
    ticket: int  # the journal group holding the decision (see Journal.commit)
    order_left: bool = False  # an order (or one of unknown fate) is at the broker


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
    ):
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
        self._decided: dict[str, tuple[str, str]] = {}  # signal_id -> (body hash, decision JSON)
        # Decided with an order at the broker, but the journal failed to keep the decision.
        self._undurable: dict[str, tuple[str, str, BrokerOrder | None]] = {}
        self._inflight: dict[str, tuple[str, asyncio.Future[str]]] = {}
        self._bp_snapshot = (ZERO, ZERO, ZERO)  # buying power, cash, open buys at last sync
        self._tasks: list[asyncio.Task[None]] = []
        self.monitor = RiskMonitor(
            config,
            book=self.book,
            quotes=quotes,
            journal=journal,
            halt=halt,
            metrics=metrics,
            clock=clock,
        )
        self.events = BrokerEvents(
            broker=broker,
            book=self.book,
            quotes=quotes,
            journal=journal,
            metrics=metrics,
            evaluate_risk=self.evaluate_risk,
        )
        self.unknown = UnknownOrders(broker, apply_order=self.events.apply, absent=self._absent)
        self.events.on_order = self.unknown.settle
        self.sender = OrderSender(
            broker=broker,
            journal=journal,
            halt=halt,
            failures=failures,
            metrics=metrics,
            durable=self._durable,
            release=self.book.release,
            apply_order=self.events.apply,
            on_unknown=self.unknown.add,
        )
        self.conclusion = Conclusion(
            journal=journal,
            failures=failures,
            config=config,
            apply_order=lambda order, price: self.events.apply(
                order, valued_at=price, record=False
            ),
        )
        self.ready = False
        self.shutting_down = False

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
        await self.sync_with_broker()
        self.monitor.restore()
        self._restore_decisions()
        recovered = await resolve_undecided(
            self.journal, self.broker, self.book, halt=self.halt, on_unknown=self.unknown.add
        )
        self._decided.update(recovered)
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

    async def sync_with_broker(self) -> None:
        account = await self.broker.account()
        positions = await self.broker.positions()
        self.book.load_account(account)
        self.book.load_positions(positions)
        # Our open orders are the journal's; reconciliation then compares them with the broker's.
        for stored in self.journal.orders(open_only=True):
            if stored.status == "pending_submit":
                continue  # an intent: resolve_undecided asks the broker, or it is unknown
            order = stored.to_broker_order()
            price = Decimal(stored.valued_at or stored.limit_price or 0)
            self.book.track(order, price or order.limit_price or ZERO)
        self._bp_snapshot = (account.buying_power, self.book.cash, self.book.open_buy_notional())
        open_orders = self.book.open_orders()
        for symbol in {p.symbol for p in positions} | {o.symbol for o in open_orders}:
            if self.quotes.get(symbol) is None:
                with contextlib.suppress(BrokerError):
                    self.quotes.update(await self.broker.quote(symbol))

    def _restore_decisions(self) -> None:
        """Replays answer from the journal; orders of unknown fate are asked after again."""
        unknown = {s.client_order_id for s in self.journal.signals() if s.decision is not None}
        for stored in self.journal.signals():
            if stored.decision is not None:
                self._decided[stored.signal_id] = (stored.body_hash, stored.decision)
        for stored_order in self.journal.orders(open_only=True):
            if stored_order.status == "pending_submit" and stored_order.client_order_id in unknown:
                request = stored_order.to_request()
                price = Decimal(stored_order.valued_at or stored_order.limit_price or 0)
                self.book.reserve(
                    Reservation(
                        request.client_order_id,
                        request.symbol,
                        request.side,
                        request.quantity,
                        price,
                    )
                )
                self.unknown.add(request)

    def _absent(self, client_order_id: str, why: str) -> None:
        self.book.release(client_order_id)
        self.journal.record_order_status(client_order_id, "rejected", why)

    # --- the pipeline ------------------------------------------------------------------------

    async def submit_signal(self, signal: Signal) -> Answer:
        """Decide on a signal. A replay answers the first decision, exactly; the same signal_id
        with another body is SignalConflict, even while the first is still being decided."""
        digest = body_hash(signal)
        signal_id = signal.signal_id
        known = self._decided.get(signal_id) or self._undurable.get(signal_id)
        if known is not None:
            if known[0] != digest:
                raise SignalConflict(f"signal_id {signal_id} was used with another body")
            if signal_id in self._undurable:
                self._journal_again(signal_id)
            return Answer(known[1], replayed=True)
        pending = self._inflight.get(signal_id)
        if pending is not None:
            if pending[0] != digest:
                raise SignalConflict(f"signal_id {signal_id} is being decided with another body")
            return Answer(await asyncio.shield(pending[1]), replayed=True)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[signal_id] = (digest, future)
        try:
            decision_json = await self._decide_durably(signal, digest)
            future.set_result(decision_json)
            return Answer(decision_json)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller gets it from this frame
            raise
        finally:
            del self._inflight[signal_id]

    async def _decide_durably(self, signal: Signal, digest: str) -> str:
        decided = await self._decide(signal, digest)
        try:
            await self._durable(decided.ticket)  # the decision is durable before anyone is told
        except JournalUnavailable:
            if decided.order_left:
                # The order is at the broker: keep the decision to journal and answer later.
                order = self.book.orders.get(client_order_id(signal.signal_id))
                self._undurable[signal.signal_id] = (
                    digest,
                    decided.decision_json,
                    order.order if order else None,
                )
            raise
        self._decided[signal.signal_id] = (digest, decided.decision_json)
        return decided.decision_json

    def _journal_again(self, signal_id: str) -> None:
        """A replay of a decision the journal failed to keep: keep it now or answer 503."""
        digest, decision_json, order = self._undurable[signal_id]
        outcome = Decision.model_validate_json(decision_json).decision.value
        self.journal.commit_now(self.journal.record_decision(signal_id, decision_json, outcome))
        if order is not None:
            self.journal.record_order_updates([(order, None, "journaled after an outage")])
        del self._undurable[signal_id]
        self._decided[signal_id] = (digest, decision_json)

    async def _decide(self, signal: Signal, digest: str) -> _Decided:
        started = time.perf_counter()
        body = exact_body(signal)
        refusal = self._gate(signal)
        if refusal is not None:
            return self._refuse(signal, digest, body, refusal, started)
        if self.quotes.get(signal.symbol) is None:
            await self._snapshot_quote(signal.symbol)
        priced = self.quotes.price_order(
            signal.symbol, signal.side, signal.order_type, signal.limit_price
        )
        if isinstance(priced, PricingRefusal):
            reasons = [Reason(code=priced.code, message=priced.message)]
            limit = self.risk.pre_trade.max_order_quantity
            if signal.quantity > limit:
                reasons.append(
                    Reason(
                        code=ReasonCode.MAX_ORDER_QUANTITY,
                        message=f"quantity {signal.quantity} exceeds max_order_quantity {limit}",
                    )
                )
            return self._refuse(signal, digest, body, (DecisionKind.REJECTED, reasons), started)
        async with self._lock:
            admission = self._admit(signal, priced)
            if admission.refusal is not None:
                return self._refuse(
                    signal, digest, body, admission.refusal, started, admission.risk
                )
            request = self._request(signal)
            self.book.reserve(
                Reservation(
                    request.client_order_id,
                    signal.symbol,
                    signal.side,
                    signal.quantity,
                    priced.value,
                )
            )
        return await self._send(signal, digest, body, request, admission, started)

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

    def _request(self, signal: Signal) -> OrderRequest:
        # Every value comes from the validated Signal, whose rules are the request's (the
        # symbol, a positive quantity, a limit price exactly on limit orders): no second
        # validation. The client_order_id is ours.
        return assemble(
            OrderRequest,
            {
                "client_order_id": client_order_id(signal.signal_id),
                "symbol": signal.symbol,
                "side": signal.side,
                "quantity": signal.quantity,
                "order_type": signal.order_type,
                "limit_price": signal.limit_price,
                "time_in_force": signal.time_in_force,
            },
        )

    async def _send(
        self,
        signal: Signal,
        digest: str,
        body: str,
        request: OrderRequest,
        admission: Admission,
        started: float,
    ) -> _Decided:
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
            ),
        )
        why_not = sender.may_send()
        if why_not is not None:
            sender.not_sent(request, why_not)
            reasons = [Reason(code=ReasonCode.HALTED, message=why_not)]
            return self._conclude_refusal(signal, DecisionKind.BLOCKED, reasons, started, admission)
        result = await sender.send(request, signal.strategy)
        if result.order is None and not result.unknown:
            assert result.code is not None
            reasons = [Reason(code=result.code, message=result.message)]
            return self._conclude_refusal(
                signal, DecisionKind.REJECTED, reasons, started, admission
            )
        decision_json, ticket = self.conclusion.accepted(signal, request, admission, result)
        self._remember(signal, DecisionKind.ACCEPTED, [], started, request.client_order_id)
        return _Decided(decision_json, ticket, order_left=True)

    def _conclude_refusal(
        self,
        signal: Signal,
        kind: DecisionKind,
        reasons: list[Reason],
        started: float,
        admission: Admission,
    ) -> _Decided:
        """A refusal after the intent was journaled: the decision completes that row."""
        decision = Decision(
            signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=admission.risk
        )
        decision_json = decision.model_dump_json()
        ticket = self.journal.record_decision(
            signal.signal_id, decision_json, kind.value, defer=True
        )
        self._remember(signal, kind, reasons, started, None)
        return _Decided(decision_json, ticket)

    async def _durable(self, ticket: int) -> None:
        """Make the writes of ``ticket``'s group durable. With other signals in flight their
        writes share one commit (group commit); alone, committing at once saves a loop turn."""
        if len(self._inflight) > 1:
            await self.journal.commit(ticket)
        else:
            self.journal.commit_now(ticket)

    async def _snapshot_quote(self, symbol: str) -> None:
        """Nothing streamed yet for this symbol: take the broker's REST snapshot and subscribe."""
        self.broker.subscribe_quotes([symbol])
        try:
            quote = await asyncio.wait_for(self.broker.quote(symbol), timeout=2.0)
        except (BrokerError, TimeoutError) as exc:
            log.info("no quote snapshot for %s: %s", symbol, exc, extra={"symbol": symbol})
            return
        if self.quotes.get(symbol) is None:
            self.quotes.update(quote)

    def _gate(self, signal: Signal) -> tuple[DecisionKind, list[Reason]] | None:
        if self.shutting_down:
            reason = Reason(code=ReasonCode.SHUTTING_DOWN, message="the gateway is shutting down")
            return DecisionKind.BLOCKED, [reason]
        if self.halt.is_halted:
            current = self.halt.current
            self.halt.record_blocked(signal.signal_id)
            what = f"{current.trigger.value}: {current.reason}" if current else "halted"
            reason = Reason(code=ReasonCode.HALTED, message=f"trading is halted ({what})")
            return DecisionKind.BLOCKED, [reason]
        streak = self.failures.consecutive_for(signal.strategy)
        if streak >= self.failures.threshold:
            reason = Reason(
                code=ReasonCode.STRATEGY_SUSPENDED,
                message=f"strategy {signal.strategy} has {streak} consecutive failures; "
                "a reported success or an admin reset clears it",
            )
            return DecisionKind.BLOCKED, [reason]
        if not self._rate.try_take():
            reason = Reason(code=ReasonCode.RATE_LIMITED, message="max_orders_per_second reached")
            return DecisionKind.REJECTED, [reason]
        return None

    def _refuse(
        self,
        signal: Signal,
        digest: str,
        body: str,
        refusal: tuple[DecisionKind, list[Reason]],
        started: float,
        risk: DecisionRisk | None = None,
    ) -> _Decided:
        """A refusal before any intent: one journal row, the signal and its decision."""
        kind, reasons = refusal
        decision = Decision(
            signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=risk or DecisionRisk()
        )
        decision_json = decision.model_dump_json()
        ticket = self.journal.record_refusal(
            signal_id=signal.signal_id,
            body_hash=digest,
            body=body,
            strategy=signal.strategy,
            symbol=signal.symbol,
            decision_json=decision_json,
            outcome=kind.value,
            defer=True,
        )
        self._remember(signal, kind, reasons, started, None)
        return _Decided(decision_json, ticket)

    def _remember(
        self,
        signal: Signal,
        kind: DecisionKind,
        reasons: list[Reason],
        started: float,
        coid: str | None,
    ) -> None:
        self.metrics.observe_decision(kind.value, [r.code.value for r in reasons])
        if not log.isEnabledFor(logging.INFO):
            return  # nothing below is needed unless the line is written
        log.info(
            "signal %s %s",
            kind.value,
            ",".join(r.code.value for r in reasons) or "ok",
            extra={
                "signal_id": signal.signal_id,
                "strategy": signal.strategy,
                "symbol": signal.symbol,
                "client_order_id": coid or client_order_id(signal.signal_id),
                "decision": kind.value,
                "elapsed_us": round((time.perf_counter() - started) * 1e6),
            },
        )
