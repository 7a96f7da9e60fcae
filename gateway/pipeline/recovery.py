"""Restart recovery of signals whose intent was journaled but whose decision never was (a crash
between the two): the broker is asked for the client_order_id, the order is never sent again.

- the broker has the order: accepted, with the broker's state;
- the broker answers that it has none: rejected, it was never placed;
- the look-up fails: its fate is unknown (accepted, pending_submit), settled later like any
  submit whose answer was lost.

A signal body the gateway cannot read back (a damaged journal) does not stop the start (that
would be a crash loop under systemd): its order is resolved by client_order_id all the same and
the gateway starts HALTED, saying which signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from pydantic import ValidationError

from brokers.base import Broker, OrderRequest, OrderStatus
from brokers.errors import BrokerError
from gateway.models import Decision, DecisionKind, DecisionRisk, Reason, ReasonCode, Signal
from gateway.pipeline.decisions import accepted, intent_summary, order_summary
from gateway.pipeline.replace_recovery import decide_replace
from gateway.risk.book import Book, Reservation
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.amends import is_replace_body
from gateway.store.journal import Journal
from gateway.store.schema import StoredOrder

log = logging.getLogger("gateway.pipeline.recovery")

ZERO = Decimal(0)


async def resolve_undecided(
    journal: Journal,
    broker: Broker,
    book: Book,
    *,
    halt: HaltManager,
    on_unknown: Callable[[OrderRequest], None],
) -> dict[str, tuple[str, str]]:
    """Decide every undecided signal from the broker's answer; returns signal_id -> (body hash,
    decision JSON) for the idempotency record."""
    decided: dict[str, tuple[str, str]] = {}
    for signal_id, digest, body, coid in journal.undecided():
        if is_replace_body(body):
            decided[signal_id] = (
                digest,
                await decide_replace(signal_id, body, journal, broker),
            )
            continue
        _check_body(signal_id, body, halt)
        # Its order row, whatever its status: a decision lost with its group leaves the row to
        # the broker's updates (it may read filled), and only the broker can say it was not
        # placed. Read by its key: the start never reads every order ever journaled.
        stored = journal.order(coid) if coid else None
        decision = await _decide(signal_id, stored, journal, broker, book, on_unknown)
        outcome = decision.decision.value
        decision_json = decision.model_dump_json()
        journal.commit_now(journal.record_decision(signal_id, decision_json, outcome))
        journal.record_event(
            "recovered_intent",
            {"signal_id": signal_id, "client_order_id": coid, "outcome": outcome},
        )
        decided[signal_id] = (digest, decision_json)
        log.warning(
            "resolved an undecided signal after restart: %s",
            outcome,
            extra={"signal_id": signal_id, "client_order_id": coid},
        )
    return decided


def _check_body(signal_id: str, body: str, halt: HaltManager) -> None:
    try:
        Signal.model_validate_json(body)
    except (ValidationError, ValueError) as exc:
        reason = f"journal: the body of signal {signal_id} cannot be read back ({exc}); its "
        reason += "order was resolved by client_order_id: check the journal before resuming"
        log.critical(reason.replace("\n", " "))
        halt.halt(reason.replace("\n", " ")[:500], HaltTrigger.STATE_UNREADABLE, by="recovery")


async def _decide(
    signal_id: str,
    stored: StoredOrder | None,
    journal: Journal,
    broker: Broker,
    book: Book,
    on_unknown: Callable[[OrderRequest], None],
) -> Decision:
    if stored is None:  # a refusal's row cut short, or an order row that is gone
        reason = Reason(
            code=ReasonCode.BROKER_UNAVAILABLE,
            message="decided before a restart, but no order intent was kept: nothing was sent",
        )
        return Decision(signal_id=signal_id, decision=DecisionKind.REJECTED, reasons=[reason])
    coid = stored.client_order_id
    request = stored.to_request()
    valued = Decimal(stored.valued_at or stored.limit_price or 0)
    try:
        order = await broker.get_order(coid)
    except BrokerError as exc:
        # Fate unknown: its exposure stays counted until a look-up settles it.
        book.reserve(Reservation(coid, request.symbol, request.side, request.quantity, valued))
        on_unknown(request)
        reason = Reason(
            code=ReasonCode.BROKER_ANSWER_UNKNOWN,
            message=f"no broker answer before a restart and the look-up failed ({exc}): its "
            "fate follows in /v1/orders once settled",
        )
        return accepted(signal_id, intent_summary(request, valued), DecisionRisk(), [reason])
    if order is None:
        reason = Reason(
            code=ReasonCode.BROKER_UNAVAILABLE,
            message="no broker answer before a restart, and the broker has no order "
            f"{coid}: it was never placed",
        )
        journal.record_order_status(coid, "rejected", reason.message)
        _legs_never_placed(coid, request.symbol, journal, book)
        return Decision(signal_id=signal_id, decision=DecisionKind.REJECTED, reasons=[reason])
    # Positions already hold its fills (they came from the broker): only track it.
    price = order.avg_fill_price or order.limit_price or valued or ZERO
    book.track(order, price)
    journal.record_order_updates([(order, None, "recovered after a restart")])
    return accepted(signal_id, order_summary(order, price, None), DecisionRisk())


def _legs_never_placed(entry: str, symbol: str, journal: Journal, book: Book) -> None:
    """A bracket's legs go with an entry that was never placed: they were journaled with it
    as held, and would otherwise stay open in the journal (and in the book, as a stop guarding
    a symbol no stop was ever placed for) at every restart."""
    for stored in journal.orders(open_only=True, symbol=symbol):
        if stored.parent_id != entry:
            continue
        leg = stored.to_broker_order()
        book.track(leg.model_copy(update={"status": OrderStatus.REJECTED}), ZERO)
        journal.record_order_status(
            stored.client_order_id, "rejected", f"its entry {entry} was never placed"
        )
    if book.position_qty(symbol) == ZERO:
        book.guarded.discard(symbol)
