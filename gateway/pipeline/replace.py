"""Replacing a resting order (PATCH /v1/orders/{client_order_id}), decided like a signal:

    order visible? -> idempotency (its own signal_id) -> [order lock] open? change valid?
        -> halt gate, strategy gate, rate limit -> price from live quote
        -> [risk lock: REDUCE_ONLY, pre-trade checks counting only what it adds, reserve that]
        -> journal the intent (committed) -> last gate -> broker.replace
        -> the order's new quantity and prices, its order event and the decision (one write)

A refusal by the broker leaves the original order as it was (book and journal). Nothing reaches
the broker or the journal for a request the order cannot take (ReplaceInvalid, OrderNotOpen).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Collection
from decimal import Decimal

from brokers.base import Broker, BrokerOrder, OrderChange
from brokers.errors import BrokerError, OrderNotFound, OrderRejected
from gateway.config import RiskConfig
from gateway.errors import OrderNotOpen, OrderUnknown
from gateway.models import Decision, DecisionKind, OrderReplace, Reason, ReasonCode, Signal
from gateway.pipeline.admission import Admission
from gateway.pipeline.amend import OrderLocks, look_up
from gateway.pipeline.decisions import accepted, order_summary
from gateway.pipeline.gates import Gates
from gateway.pipeline.idempotency import Answer, Decided, SignalRecord, decision_after_intent
from gateway.pipeline.leg_moves import admit_leg_move, check_leg_patch
from gateway.pipeline.order_views import OrderViews
from gateway.pipeline.recording import DecisionRecorder
from gateway.pipeline.replace_rules import admit_replace, as_signal, change_for, replaced
from gateway.risk.book import Book, Reservation
from gateway.risk.quotes import Price, PricingRefusal, QuoteBook
from gateway.store.amends import REPLACE_KEY
from gateway.store.journal import Journal

# The reservation a replace holds for the exposure it adds while it is on the wire.
RESERVED = "#replace"


def replace_body(client_order_id: str, patch: OrderReplace) -> str:
    """The replace as the journal keeps it: the order it changes first, numbers as exact text."""
    fields: dict[str, str] = {REPLACE_KEY: client_order_id, "signal_id": patch.signal_id}
    for name in ("quantity", "limit_price", "stop_price"):
        value = getattr(patch, name)
        if value is not None:
            fields[name] = format(value.normalize(), "f")
    return json.dumps(fields, separators=(",", ":"))


def replace_hash(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


class Replaces:
    def __init__(
        self,
        *,
        broker: Broker,
        journal: Journal,
        book: Book,
        quotes: QuoteBook,
        risk: RiskConfig,
        views: OrderViews,
        locks: OrderLocks,
        signals: SignalRecord,
        gates: Gates,
        recorder: DecisionRecorder,
        risk_lock: asyncio.Lock,
        durable: Callable[[int], Awaitable[None]],
        may_send: Callable[[], Reason | None],
        buying_power: Callable[[], Decimal],
        reduce_only: Callable[[], str | None],
        shutting_down: Callable[[], bool],
        snapshot_quote: Callable[[str], Awaitable[None]],
        apply_order: Callable[[BrokerOrder], None],
        hold_replaced: Callable[[BrokerOrder, Decimal], None],
    ):
        self._broker, self._journal, self._book = broker, journal, book
        self._quotes, self._risk, self._views, self._locks = quotes, risk, views, locks
        self._signals, self._gates, self._recorder = signals, gates, recorder
        self._risk_lock, self._durable, self._may_send = risk_lock, durable, may_send
        self._buying_power, self._reduce_only = buying_power, reduce_only
        self._shutting_down, self._snapshot_quote = shutting_down, snapshot_quote
        self._apply = apply_order  # a broker state, journaled like any broker update
        self._hold = hold_replaced  # the replaced order, journaled with its decision

    async def replace(
        self, client_order_id: str, patch: OrderReplace, strategies: Collection[str] | None
    ) -> Answer:
        stored = self._views.stored(client_order_id, strategies)
        if stored is None:
            raise OrderUnknown(client_order_id)
        body = replace_body(client_order_id, patch)
        digest = replace_hash(body)
        strategy = stored.strategy or ""
        return await self._signals.answer(
            patch.signal_id,
            digest,
            lambda: self._decide(client_order_id, strategy, patch, body, digest),
        )

    async def _decide(
        self, coid: str, strategy: str, patch: OrderReplace, body: str, digest: str
    ) -> Decided:
        async with self._locks(coid):
            started = time.perf_counter()
            tracked = self._book.orders.get(coid)
            if tracked is None:
                raise OrderNotOpen(f"order {coid} is not open", self._views.get(coid, None))
            role = self._book.legs.get(coid)
            if role is not None:
                check_leg_patch(role, patch)  # a leg moves its price, never its quantity
            before = tracked.order
            change = change_for(before, patch)  # ReplaceInvalid: nothing journaled
            after = replaced(before, change)
            signal = as_signal(patch.signal_id, strategy, after)
            refusal = self._gates.check(signal, shutting_down=self._shutting_down())
            if refusal is not None:
                return self._recorder.refused(signal, digest, body, refusal, started, coid=coid)
            if self._quotes.get(before.symbol) is None:
                await self._snapshot_quote(before.symbol)
            priced = self._quotes.price_order(
                after.symbol, after.side, after.order_type, after.limit_price, after.stop_price
            )
            if isinstance(priced, PricingRefusal):
                reasons = [Reason(code=priced.code, message=priced.message)]
                refused = (DecisionKind.REJECTED, reasons)
                return self._recorder.refused(signal, digest, body, refused, started, coid=coid)
            async with self._risk_lock:
                admission = self._admit(signal, before, after, priced, leg=role is not None)
                if admission.refusal is not None:
                    return self._recorder.refused(
                        signal, digest, body, admission.refusal, started, admission.risk, coid=coid
                    )
                if role is None:  # a leg adds no exposure: nothing to hold
                    self._reserve(before, after, priced.value)
            try:
                return await self._send(signal, body, digest, before, change, admission, started)
            finally:
                self._book.release(coid + RESERVED)

    def _admit(
        self, signal: Signal, before: BrokerOrder, after: BrokerOrder, priced: Price, *, leg: bool
    ) -> Admission:
        if leg:
            marks = self._quotes.marks()
            return admit_leg_move(
                before,
                after,
                priced,
                book=self._book,
                marks=marks,
                equity=self._book.cash + self._book.market_value(marks),
                risk=self._risk,
                reduce_only=self._reduce_only(),
            )
        return admit_replace(
            signal,
            before,
            after,
            priced,
            book=self._book,
            quotes=self._quotes,
            buying_power=self._buying_power,
            risk=self._risk,
            reduce_only=self._reduce_only(),
        )

    def _reserve(self, before: BrokerOrder, after: BrokerOrder, price: Decimal) -> None:
        """Hold what the replace may add (its new order whole, beside the original: more than
        it adds, never less) until the broker answers, so concurrent signals count it."""
        self._book.reserve(
            Reservation(
                before.client_order_id + RESERVED,
                after.symbol,
                after.side,
                after.remaining_quantity,
                price,
            )
        )

    async def _send(
        self,
        signal: Signal,
        body: str,
        digest: str,
        before: BrokerOrder,
        change: OrderChange,
        admission: Admission,
        started: float,
    ) -> Decided:
        coid = before.client_order_id
        ticket = self._journal.record_replace_intent(
            signal_id=signal.signal_id,
            body_hash=digest,
            body=body,
            strategy=signal.strategy,
            symbol=signal.symbol,
            client_order_id=coid,
            status=before.status.value,
            defer=True,
        )
        await self._durable(ticket)  # the intent is on disk before the broker hears of it
        why_not = self._may_send()
        if why_not is not None:
            return self._refused(
                signal, (DecisionKind.BLOCKED, [why_not]), admission, started, coid
            )
        try:
            now = await self._broker.replace(coid, change)
        except (OrderRejected, OrderNotFound) as exc:
            return await self._broker_refused(signal, exc, admission, started, coid)
        except BrokerError as exc:
            found = await look_up(self._broker, coid)
            if found is None or found != replaced(found, change):
                fate = (
                    "the order could not be looked up: whether it was replaced follows in "
                    "/v1/orders and on the event stream"
                    if found is None
                    else "the broker holds the order unchanged"
                )
                reason = Reason(
                    code=ReasonCode.BROKER_UNAVAILABLE, message=f"broker: {exc}; {fate}"
                )
                if found is not None:
                    self._apply(found)
                return self._refused(
                    signal, (DecisionKind.REJECTED, [reason]), admission, started, coid
                )
            now = found
        return self._accepted(signal, now, admission, started)

    async def _broker_refused(
        self, signal: Signal, exc: BrokerError, admission: Admission, started: float, coid: str
    ) -> Decided:
        """The broker said no: the original order stands as it was, unless the broker says it
        is not open any more (then that truth is applied)."""
        found = await look_up(self._broker, coid)
        if found is not None and not found.is_open:
            self._apply(found)
        reason = Reason(code=ReasonCode.BROKER_REJECTED, message=f"broker: {exc}")
        return self._refused(signal, (DecisionKind.REJECTED, [reason]), admission, started, coid)

    def _refused(
        self,
        signal: Signal,
        refusal: tuple[DecisionKind, list[Reason]],
        admission: Admission,
        started: float,
        coid: str,
    ) -> Decided:
        kind, reasons = refusal
        decision = Decision(
            signal_id=signal.signal_id, decision=kind, reasons=reasons, risk=admission.risk
        )
        decision_json = decision.model_dump_json()
        detail = "replace refused: " + "; ".join(r.message for r in reasons)
        self._recorder.observe(signal, kind, reasons, started, coid=coid)
        return decision_after_intent(
            decision_json,
            lambda: self._journal.record_replace_decision(
                signal.signal_id, decision_json, kind.value, None, detail=detail, defer=True
            ),
        )

    def _accepted(
        self, signal: Signal, order: BrokerOrder, admission: Admission, started: float
    ) -> Decided:
        price = admission.price
        self._hold(order, price.value)
        quote = price.quote
        summary = order_summary(
            order, price.value, quote.ts if quote else None, conservative=price.conservative
        )
        decision_json = accepted(signal.signal_id, summary, admission.risk).model_dump_json()
        self._recorder.observe(
            signal, DecisionKind.ACCEPTED, [], started, coid=order.client_order_id
        )
        return decision_after_intent(
            decision_json,
            lambda: self._journal.record_replace_decision(
                signal.signal_id,
                decision_json,
                "accepted",
                order,
                valued_at=str(price.value),
                detail="replaced",
                defer=True,
            ),
        )
