"""What a restart puts back in the book beside the broker's account and positions: the
journal's open orders, its decided orders of unknown fate, and their states at the broker.

The positions come from the broker, so they already hold every fill up to the restart, those of
the journal's own orders included: the orders that filled while the gateway was down, and those
whose fate is unknown. So each of these orders is held at the broker's state when it is open at
the broker now, and is otherwise (final, or never placed) marked as counted: its next update
adds no fill. A fill is never counted twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal

from brokers.base import Account, Broker, BrokerOrder, OrderRequest
from brokers.errors import BrokerError
from gateway.pipeline.settle import UnknownOrders
from gateway.risk.book import Book, Reservation
from gateway.risk.quotes import QuoteBook
from gateway.store.journal import Journal, StoredOrder
from gateway.store.orders import OrderUpdate

log = logging.getLogger("gateway.pipeline.restore")

ZERO = Decimal(0)


def _valued_at(stored: StoredOrder) -> Decimal:
    return Decimal(stored.valued_at or stored.limit_price or 0)


async def adopt_brackets(journal: Journal, broker: Broker) -> None:
    """Name the journal's open brackets to the broker before its open orders are read: a broker
    that names legs itself (Alpaca) then reports them under the gateway's ids, so they are
    neither adopted as strangers nor taken for lost stops. A look-up that fails is logged; the
    reconciliation that follows says what differs."""
    legs: dict[str, dict[str, str]] = {}
    for stored in journal.orders(open_only=True):
        if stored.parent_id is not None and stored.role is not None:
            legs.setdefault(stored.parent_id, {})[stored.role] = stored.client_order_id
    adopt = getattr(broker, "adopt_bracket", None)
    if adopt is None:
        return
    for entry, roles in legs.items():
        try:
            await adopt(entry, roles.get("stop_loss"), roles.get("take_profit"))
        except BrokerError as exc:
            log.warning("bracket %s could not be named to the broker: %s", entry, exc)


def track_journal_orders(journal: Journal, book: Book) -> None:
    """The journal's open orders, at the journal's state (``rebase_on_broker`` corrects it).
    Bracket legs are named first, so they are held as exits and their entries at their stop."""
    stored_open = journal.orders(open_only=True)
    for stored in stored_open:
        if stored.role is not None:
            book.add_legs({stored.client_order_id: stored.role})
            if stored.role == "stop_loss" and stored.parent_id and stored.stop_price:
                book.set_entry_stop(stored.parent_id, Decimal(stored.stop_price))
    for stored in stored_open:
        if stored.status == "pending_submit":
            continue  # an intent: resolve_undecided asks the broker, or it is unknown
        order = stored.to_broker_order()
        book.track(order, _valued_at(stored) or order.limit_price or ZERO)


def restore_decisions(
    journal: Journal, book: Book, on_unknown: Callable[[OrderRequest], None]
) -> dict[str, tuple[str, str]]:
    """Orders decided with an unknown fate keep their exposure and are asked after again; their
    signal_ids are returned (signal_id -> (body hash, decision JSON)) for the idempotency
    record. Other decided signal_ids stay in the journal, where a replay finds them: the start
    reads the open orders, not every signal ever journaled."""
    decided: dict[str, tuple[str, str]] = {}
    for stored in journal.orders(open_only=True):
        if stored.status != "pending_submit" or stored.signal_id is None:
            continue
        signal = journal.signal(stored.signal_id)
        if signal is None or signal.decision is None:
            continue  # an intent never decided: resolve_undecided asks the broker
        if signal.client_order_id != stored.client_order_id:
            continue  # a bracket's leg: it follows its entry
        request = stored.to_request()
        book.reserve(
            Reservation(
                request.client_order_id,
                request.symbol,
                request.side,
                request.quantity,
                _valued_at(stored),
            )
        )
        on_unknown(request)
        decided[signal.signal_id] = (signal.body_hash, signal.decision)
    return decided


def rebase_on_broker(
    book: Book, open_at_broker: list[BrokerOrder], unknown: UnknownOrders, journal: Journal
) -> None:
    """Hold the journal's orders (open or of unknown fate) as the broker had them when the
    positions were loaded: ``open_at_broker`` is the broker's open list of that moment."""
    theirs = {o.client_order_id: o for o in open_at_broker}
    updates: list[OrderUpdate] = []
    for coid in [*book.orders, *unknown.pending]:
        now = theirs.get(coid)
        if now is None:
            # Final or never placed: whatever it filled is in the positions already.
            book.filled_before_start.add(coid)
            continue
        tracked, reserved = book.orders.get(coid), book.reservations.get(coid)
        price = tracked.price if tracked else reserved.price if reserved else ZERO
        unknown.settle(now)
        book.track(now, price or now.limit_price or ZERO)
        then = tracked.order if tracked else None
        if then is None or (then.status, then.filled_quantity) != (now.status, now.filled_quantity):
            updates.append((now, None, "at the broker when the gateway started"))
    if updates:
        journal.record_order_updates(updates)
        log.info("%d open orders taken at the broker's state at start", len(updates))


async def quote_held_symbols(broker: Broker, book: Book, quotes: QuoteBook) -> None:
    """A snapshot quote for every symbol held or with an open order that has none yet (a
    snapshot that fails leaves the symbol unquoted)."""
    for symbol in set(book.holdings) | {o.symbol for o in book.open_orders()}:
        if quotes.get(symbol) is None:
            with contextlib.suppress(BrokerError):
                quotes.update(await broker.quote(symbol))


async def load_from_broker(
    broker: Broker, journal: Journal, book: Book
) -> tuple[Account, list[BrokerOrder]]:
    """The broker's account, positions and open orders, taken at one moment (a restart holds
    the journal's orders at that moment's state: see ``rebase_on_broker``)."""
    account = await broker.account()
    positions = await broker.positions()
    await adopt_brackets(journal, broker)
    open_at_broker = await broker.open_orders()
    book.load_account(account)
    book.load_positions(positions)
    track_journal_orders(journal, book)
    return account, open_at_broker
