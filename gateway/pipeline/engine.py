"""The engine: the signal pipeline, read top to bottom, and the broker event loop.

    signal -> idempotency -> halt gate -> strategy gate -> rate limit -> price from live quote
           -> [risk lock: reduce-only gate, pre-trade checks, reserve exposure]
           -> journal intent -> broker.submit (retried, never doubled) -> journal ack -> decision

The engine wires the parts; the parts do not import it. Every refusal is a Decision with reasons;
nothing is invented: an order without a usable quote is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from brokers.base import (
    Broker,
    BrokerEvent,
    BrokerOrder,
    ConnectionEvent,
    Fill,
    OrderEvent,
    OrderRequest,
    QuoteEvent,
    assemble,
    utcnow,
)
from brokers.errors import BrokerError, OrderRejected
from gateway.config import GatewayConfig
from gateway.errors import SignalConflict
from gateway.models import (
    Decision,
    DecisionKind,
    DecisionRisk,
    Reason,
    ReasonCode,
    Signal,
)
from gateway.ops.metrics import GatewayMetrics
from gateway.pipeline.decisions import accepted, order_summary
from gateway.pipeline.ids import client_order_id
from gateway.pipeline.ratelimit import TokenBucket
from gateway.pipeline.recovery import resolve_undecided
from gateway.pipeline.submitter import OrderSubmitter, SubmitOutcome
from gateway.risk.book import Book, Reservation
from gateway.risk.checks import OrderContext, run_checks
from gateway.risk.monitor import RiskMonitor
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook
from gateway.risk.state import (
    EquityMarks,
    RiskMeasures,
    RiskState,
)
from gateway.safety.failures import FailureTracker, FailureType
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
        self._clock = clock
        self._submitter = OrderSubmitter(broker)
        self._lock = asyncio.Lock()
        self._rate = TokenBucket(float(self.risk.pre_trade.max_orders_per_second))
        self._decided: dict[str, tuple[str, str]] = {}  # signal_id -> (body hash, decision JSON)
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._bp_snapshot = (ZERO, ZERO, ZERO)  # buying power, cash, open buys at last sync
        self._event_task: asyncio.Task[None] | None = None
        self._pending_updates: list[tuple[BrokerOrder, Fill | None, str | None]] = []
        self.monitor = RiskMonitor(
            config,
            book=self.book,
            quotes=quotes,
            journal=journal,
            halt=halt,
            metrics=metrics,
            clock=clock,
        )
        self.ready = False
        self.shutting_down = False
        # Called when the broker link comes back: the service reconciles before trusting the book.
        self.on_reconnect: Callable[[], None] | None = None

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

    def buying_power(self) -> Decimal:
        """The broker's figure at the last sync, moved by our own fills and orders since."""
        bp, cash_then, open_then = self._bp_snapshot
        return bp + (self.book.cash - cash_then) - (self.book.open_buy_notional() - open_then)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, restore, sync with the broker; ready only when all of that is done."""
        self.halt.restore()
        await self.broker.connect()
        await self.sync_with_broker()
        self.monitor.restore()
        self._restore_decisions()
        self._decided.update(await resolve_undecided(self.journal, self.broker, self.book))
        held = set(self.book.holdings) | {o.symbol for o in self.book.open_orders()}
        if held:
            self.broker.subscribe_quotes(sorted(held))
        self._event_task = asyncio.create_task(self._consume_events(), name="broker-events")
        self.evaluate_risk()
        self.metrics.set_broker_connected(self.broker.connected)
        self.metrics.set_state(self.state.value)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        self.shutting_down = True
        if self._event_task is not None:
            self._event_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._event_task
        self.flush_order_updates()
        self.persist_marks()
        await self.broker.close()

    async def sync_with_broker(self) -> None:
        account = await self.broker.account()
        positions = await self.broker.positions()
        self.book.load_account(account)
        self.book.load_positions(positions)
        # Our open orders are the journal's; reconciliation then compares them with the broker's.
        for stored in self.journal.orders(open_only=True):
            if stored.status != "pending_submit":
                order = stored.to_broker_order()
                price = Decimal(stored.valued_at or stored.limit_price or 0)
                self.book.track(order, price or order.limit_price or ZERO)
        open_orders = self.book.open_orders()
        self._bp_snapshot = (account.buying_power, self.book.cash, self.book.open_buy_notional())
        for symbol in {p.symbol for p in positions} | {o.symbol for o in open_orders}:
            if self.quotes.get(symbol) is None:
                with contextlib.suppress(BrokerError):
                    self.quotes.update(await self.broker.quote(symbol))

    def reset_trading_day(self) -> None:
        self.monitor.reset_trading_day()

    def persist_marks(self) -> None:
        self.monitor.persist()

    def _restore_decisions(self) -> None:
        for stored in self.journal.signals():
            if stored.decision is not None:
                self._decided[stored.signal_id] = (stored.body_hash, stored.decision)

    # --- the pipeline ------------------------------------------------------------------------

    async def submit_signal(self, signal: Signal) -> str:
        """Decide on a signal; returns the Decision's JSON (a replay returns the first, exactly)."""
        # The body is serialised once: its hash is ids.body_hash, and the journal keeps it.
        body = signal.model_dump_json()
        digest = hashlib.blake2b(body.encode(), digest_size=16).hexdigest()
        known = self._decided.get(signal.signal_id)
        if known is not None:
            if known[0] != digest:
                raise SignalConflict(f"signal_id {signal.signal_id} was used with another body")
            await self._durable()  # never answer with a decision that is not yet durable
            return known[1]
        pending = self._inflight.get(signal.signal_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[signal.signal_id] = future
        try:
            decision_json = await self._decide(signal, digest, body)
            await self._durable()  # the decision is durable before anyone is told
            future.set_result(decision_json)
            return decision_json
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller gets it from this frame
            raise
        finally:
            del self._inflight[signal.signal_id]

    async def _decide(self, signal: Signal, digest: str, body: str) -> str:
        started = time.perf_counter()
        coid = client_order_id(signal.signal_id)
        gate = self._gate(signal)
        if gate is not None:
            return self._finish(signal, digest, body, DecisionKind.BLOCKED, [gate], started)
        if not self._rate.try_take():
            reason = Reason(code=ReasonCode.RATE_LIMITED, message="max_orders_per_second reached")
            return self._finish(signal, digest, body, DecisionKind.REJECTED, [reason], started)
        if self.quotes.get(signal.symbol) is None:
            await self._snapshot_quote(signal.symbol)
        priced = self.quotes.price_order(
            signal.symbol, signal.side, signal.order_type, signal.limit_price
        )
        if isinstance(priced, PricingRefusal):
            reasons = [Reason(code=priced.code, message=priced.message)]
            if signal.quantity > self.risk.pre_trade.max_order_quantity:
                reasons.append(
                    Reason(
                        code=ReasonCode.MAX_ORDER_QUANTITY,
                        message=f"quantity {signal.quantity} exceeds max_order_quantity "
                        f"{self.risk.pre_trade.max_order_quantity}",
                    )
                )
            return self._finish(signal, digest, body, DecisionKind.REJECTED, reasons, started)

        async with self._lock:
            marks = self.quotes.marks()
            equity = self.book.cash + self.book.market_value(marks)
            ctx = OrderContext(
                signal=signal,
                price=priced.value,
                quote=priced.quote,
                equity=equity,
                position_qty=self.book.position_qty(signal.symbol)
                + self.book.pending_qty(signal.symbol),
                held_qty=self.book.position_qty(signal.symbol),
                pending_sell_qty=self.book.pending_sell_qty(signal.symbol),
                gross_exposure=self.book.gross_exposure(marks),
                buying_power=self.buying_power(),
                risk=self.risk,
            )
            # Exact Decimals computed from validated values: no second validation.
            risk = assemble(
                DecisionRisk,
                {
                    "equity": equity,
                    "position_risk": ctx.position_risk,
                    "heat_before": ctx.heat_before,
                    "heat_after": ctx.heat_after,
                },
            )
            if self.state is RiskState.REDUCE_ONLY and not ctx.reduces_only:
                reason = Reason(
                    code=ReasonCode.REDUCE_ONLY,
                    message=f"reduce-only ({self.monitor.reduce_only}): only orders that shrink a "
                    "position pass",
                )
                return self._finish(
                    signal, digest, body, DecisionKind.BLOCKED, [reason], started, risk
                )
            refusals = run_checks(ctx)
            if refusals:
                return self._finish(
                    signal, digest, body, DecisionKind.REJECTED, refusals, started, risk
                )
            # Every value comes from the validated Signal, whose rules are the request's (the
            # symbol, a positive quantity, a limit price exactly on limit orders): no second
            # validation. The client_order_id is ours.
            request = assemble(
                OrderRequest,
                {
                    "client_order_id": coid,
                    "symbol": signal.symbol,
                    "side": signal.side,
                    "quantity": signal.quantity,
                    "order_type": signal.order_type,
                    "limit_price": signal.limit_price,
                    "time_in_force": signal.time_in_force,
                },
            )
            self.book.reserve(
                Reservation(coid, signal.symbol, signal.side, signal.quantity, priced.value)
            )
        # The intent is durable before the broker sees the order.
        self.journal.record_intent(
            signal_id=signal.signal_id,
            body_hash=digest,
            body=body,
            strategy=signal.strategy,
            symbol=signal.symbol,
            order=request,
            valued_at=str(priced.value),
            defer=True,
        )
        await self._durable()  # durable before the broker is called
        submit_started = time.perf_counter()
        outcome = await self._submitter.submit(request)
        self.metrics.observe_submit_latency(time.perf_counter() - submit_started)
        return self._conclude(signal, digest, body, request, priced, outcome, risk, started)

    async def _durable(self) -> None:
        """Make every journal write so far durable. With other signals in flight their writes
        share one commit (group commit); alone, committing at once saves a loop turn."""
        if len(self._inflight) > 1:
            await self.journal.commit()
        else:
            self.journal.commit_now()

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

    def _gate(self, signal: Signal) -> Reason | None:
        if self.shutting_down:
            return Reason(code=ReasonCode.SHUTTING_DOWN, message="the gateway is shutting down")
        if self.halt.is_halted:
            current = self.halt.current
            self.halt.record_blocked(
                f"{signal.signal_id} {signal.strategy} {signal.side.value} "
                f"{signal.quantity} {signal.symbol}"
            )
            what = f"{current.trigger.value}: {current.reason}" if current else "halted"
            return Reason(code=ReasonCode.HALTED, message=f"trading is halted ({what})")
        streak = self.failures.consecutive_for(signal.strategy)
        if streak >= self.failures.threshold:
            return Reason(
                code=ReasonCode.STRATEGY_SUSPENDED,
                message=f"strategy {signal.strategy} has {streak} consecutive failures; "
                "a reported success or an admin reset clears it",
            )
        return None

    def _conclude(
        self,
        signal: Signal,
        digest: str,
        body: str,
        request: OrderRequest,
        priced: Price,
        outcome: SubmitOutcome,
        risk: DecisionRisk,
        started: float,
    ) -> str:
        if outcome.order is None:
            self.book.release(request.client_order_id)
            error = outcome.error
            rejected = isinstance(error, OrderRejected)
            code = ReasonCode.BROKER_REJECTED if rejected else ReasonCode.BROKER_UNAVAILABLE
            message = f"broker: {error}" if error else "broker gave no answer"
            self.journal.record_order_rejected(request.client_order_id, message)
            if not rejected:
                # Retries exhausted: a broker failure counts against the strategy.
                self.failures.record_failure(
                    signal.strategy, signal.symbol, message, FailureType.BROKER_ERROR
                )
                self._persist_failures()
            reason = Reason(code=code, message=message)
            return self._finish(
                signal,
                digest,
                body,
                DecisionKind.REJECTED,
                [reason],
                started,
                risk,
                journaled=True,
            )
        order = outcome.order
        self.book.apply_order(order, valued_at=priced.value)
        if self.failures.consecutive_for(signal.strategy):
            self.failures.record_success(signal.strategy, signal.symbol)
            self._persist_failures()
        quote = priced.quote
        notes = (
            [
                Reason(
                    code=ReasonCode.QUOTE_CONSERVATIVE,
                    message="no usable quote: priced at the last known price x "
                    f"{self.config.gateway.quotes.conservative_multiplier}",
                )
            ]
            if priced.conservative
            else None
        )
        summary = order_summary(
            order, priced.value, quote.ts if quote else None, conservative=priced.conservative
        )
        decision = accepted(signal.signal_id, summary, risk, notes)
        decision_json = decision.model_dump_json()
        self.journal.record_decision(signal.signal_id, decision_json, "accepted", order, defer=True)
        self._remember(
            signal,
            digest,
            decision_json,
            DecisionKind.ACCEPTED,
            [],
            started,
            coid=order.client_order_id,
        )
        self.metrics.observe_order_status(order.status.value)
        if order.filled_quantity > 0:
            self.evaluate_risk()
        return decision_json

    def _finish(
        self,
        signal: Signal,
        digest: str,
        body: str,
        kind: DecisionKind,
        reasons: list[Reason],
        started: float,
        risk: DecisionRisk | None = None,
        *,
        journaled: bool = False,
    ) -> str:
        decision = Decision(
            signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=risk or DecisionRisk()
        )
        decision_json = decision.model_dump_json()
        if journaled:
            self.journal.record_decision(signal.signal_id, decision_json, kind.value, defer=True)
        else:
            self.journal.record_refusal(
                signal_id=signal.signal_id,
                body_hash=digest,
                body=body,
                strategy=signal.strategy,
                symbol=signal.symbol,
                decision_json=decision_json,
                outcome=kind.value,
                defer=True,
            )
        self._remember(signal, digest, decision_json, kind, reasons, started, coid=None)
        return decision_json

    def _remember(
        self,
        signal: Signal,
        digest: str,
        decision_json: str,
        kind: DecisionKind,
        reasons: list[Reason],
        started: float,
        *,
        coid: str | None,
    ) -> None:
        self._decided[signal.signal_id] = (digest, decision_json)
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

    def _persist_failures(self) -> None:
        self.journal.put("failures", self.failures.snapshot())

    # --- broker events -----------------------------------------------------------------------

    async def _consume_events(self) -> None:
        async for event in self.broker.events():
            try:
                self.handle_event(event)
            except Exception:
                # A bad event must not kill the loop that keeps the book honest; it is counted.
                log.exception("broker event could not be applied", extra={"event": repr(event)})
                self.metrics.observe_failure("broker_error")

    def handle_event(self, event: BrokerEvent) -> None:
        if isinstance(event, QuoteEvent):
            self.quotes.update(event.quote)
            if event.quote.symbol in self.book.holdings:
                self.evaluate_risk()
        elif isinstance(event, OrderEvent):
            self.apply_order_update(event.order, event)
        elif isinstance(event, ConnectionEvent):
            self.quotes.set_link(event.connected)
            self.metrics.set_broker_connected(event.connected)
            self.journal.record_event(
                "broker_connection", {"connected": event.connected, "reason": event.reason}
            )
            if event.connected and self.ready and self.on_reconnect is not None:
                self.on_reconnect()

    def apply_order_update(self, order: BrokerOrder, event: OrderEvent | None = None) -> None:
        """Apply at once; journal with the other updates of this loop tick, in one transaction."""
        delta = self.book.apply_order(order)
        if not self._pending_updates:
            asyncio.get_running_loop().call_soon(self.flush_order_updates)
        self._pending_updates.append(
            (order, event.fill if event else None, event.reason if event else None)
        )
        self.metrics.observe_order_status(order.status.value)
        if delta > 0:
            self.evaluate_risk()

    def flush_order_updates(self) -> None:
        updates, self._pending_updates = self._pending_updates, []
        if updates:
            self.journal.record_order_updates(updates, defer=True)
            self.journal.schedule_commit()

    # --- risk evaluation ---------------------------------------------------------------------

    def evaluate_risk(self) -> RiskMeasures:
        return self.monitor.evaluate()
