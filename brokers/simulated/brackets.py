"""Brackets on the simulated broker, as Alpaca's bracket/oto orders and IB's parent and child
orders behave: an entry and one or two exits (a stop loss, a take profit) placed as one unit.

- Placed together (``place``): the entry like any submit; the legs *held* (status ``new``, not
  working) until the entry fills, in one one-cancels-other group when there are two.
- The entry fills (even partly): a held leg starts working for the quantity filled (whatever
  quantity it showed while held: the entry's as placed); a working leg grows by each further
  fill of the entry (reason ``bracket: entry ... filled ...``).
- An exit fills (even partly): the other is reduced to what is left to exit, cancelled when
  nothing is (``oco: ...``, see ``desk.py``), and the entry's unfilled rest is cancelled: a
  position being closed is not opened further.
- The entry ends (cancelled, rejected, expired): with nothing filled its held legs are
  cancelled; after a partial fill the legs stay, protecting what filled.
- A leg is replaced or cancelled like any order, alone; a leg needs and reserves no buying
  power (it closes what its entry opened).

Refusals (``OrderRejected.code``), before anything is placed: ``bracket_invalid`` (no exit, a
leg of another symbol, on the entry's side, of another quantity, of the wrong type, or sharing
an id), ``protective_price_invalid`` (for a buy entry a stop not below, or a take profit not
above, the entry's price: its limit, else its stop, else the ask; for a sell entry the other
way round, against the bid). ``DuplicateOrder``: one of the ids is known already as something
else than this same bracket.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from brokers.base import BrokerOrder, OrderRequest, OrderStatus, OrderType, Side
from brokers.errors import DuplicateOrder, OrderNotFound, OrderRejected
from brokers.simulated.state import OrderMeta

if TYPE_CHECKING:
    from brokers.simulated.desk import OrderDesk
    from brokers.simulated.market import SimQuote

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"
_LEG_TYPES = {
    STOP_LOSS: (OrderType.STOP, OrderType.STOP_LIMIT),
    TAKE_PROFIT: (OrderType.LIMIT,),
}


def held(order: BrokerOrder, meta: OrderMeta) -> bool:
    """Whether ``order`` is a bracket's leg still waiting for its entry to fill."""
    return meta.parent is not None and order.status is OrderStatus.NEW


# --- validation ------------------------------------------------------------------------------


def _invalid(message: str) -> OrderRejected:
    return OrderRejected(message, code="bracket_invalid")


def _check_leg(entry: OrderRequest, leg: OrderRequest, role: str) -> None:
    if leg.symbol != entry.symbol:
        raise _invalid(f"{role}.symbol: {leg.symbol!r} is not the entry's {entry.symbol!r}")
    if leg.side is entry.side:
        raise _invalid(f"{role}.side: an exit of a {entry.side.value} entry is on the other side")
    if leg.quantity != entry.quantity:
        raise _invalid(f"{role}.quantity: {leg.quantity} is not the entry's {entry.quantity}")
    if leg.order_type not in _LEG_TYPES[role]:
        allowed = " or ".join(t.value for t in _LEG_TYPES[role])
        raise _invalid(f"{role}.order_type: {leg.order_type.value}, not {allowed}")


def _entry_price(entry: OrderRequest, quote: SimQuote) -> Decimal:
    """What the exits are measured against: the entry's limit, else its stop, else the ask
    (buy) or bid (sell)."""
    if entry.limit_price is not None:
        return entry.limit_price
    if entry.stop_price is not None:
        return entry.stop_price
    return quote.ask if entry.side is Side.BUY else quote.bid


def check(
    entry: OrderRequest,
    stop_loss: OrderRequest | None,
    take_profit: OrderRequest | None,
    quote: SimQuote,
) -> None:
    """Refuse a malformed bracket or one priced on the wrong side (see the module docstring)."""
    legs = {STOP_LOSS: stop_loss, TAKE_PROFIT: take_profit}
    given = {role: leg for role, leg in legs.items() if leg is not None}
    if not given:
        raise _invalid("stop_loss, take_profit: a bracket needs at least one exit")
    ids = [entry.client_order_id, *(leg.client_order_id for leg in given.values())]
    if len(set(ids)) != len(ids):
        raise _invalid("client_order_id: the entry and each leg need ids of their own")
    for role, leg in given.items():
        _check_leg(entry, leg, role)
    price = _entry_price(entry, quote)
    buy = entry.side is Side.BUY
    if stop_loss is not None:
        stop = stop_loss.stop_price
        assert stop is not None  # a stop or stop_limit request has one
        if (stop >= price) if buy else (stop <= price):
            where = "below" if buy else "above"
            raise OrderRejected(
                f"stop_loss.stop_price: {stop} must lie {where} the entry's price {price}",
                code="protective_price_invalid",
            )
    if take_profit is not None:
        target = take_profit.limit_price
        assert target is not None  # a limit request has one
        if (target <= price) if buy else (target >= price):
            where = "above" if buy else "below"
            raise OrderRejected(
                f"take_profit.limit_price: {target} must lie {where} the entry's price {price}",
                code="protective_price_invalid",
            )


# --- placing ---------------------------------------------------------------------------------


def place(
    desk: OrderDesk,
    entry: OrderRequest,
    stop_loss: OrderRequest | None,
    take_profit: OrderRequest | None,
) -> list[BrokerOrder]:
    """Place the bracket (or answer the one placed already): [entry, stop_loss?, take_profit?]
    at their current state."""
    legs = [(role, leg) for role, leg in _roles(stop_loss, take_profit) if leg is not None]
    known = existing(desk, entry, legs)
    if known is not None:
        return known
    quote = desk.quote_of(entry.symbol)
    if quote is None:
        raise OrderRejected(f"no market for {entry.symbol}", code="unknown_symbol")
    check(entry, stop_loss, take_profit, quote)
    placed = desk.accept(entry)
    desk.publish(placed)
    ids = [entry.client_order_id]
    for role, leg in legs:
        meta = OrderMeta(parent=entry.client_order_id, role=role)
        held_leg = desk.accept(leg, status=OrderStatus.NEW, meta=meta)
        desk.publish(held_leg, f"bracket: held until entry {entry.client_order_id} fills")
        ids.append(leg.client_order_id)
    if len(legs) == 2:
        desk.link_oco(ids[1:])
    desk.work(placed, entry.time_in_force, announced=True)
    return [desk.ledger.orders[c] for c in ids]


def _roles(
    stop_loss: OrderRequest | None, take_profit: OrderRequest | None
) -> list[tuple[str, OrderRequest | None]]:
    return [(STOP_LOSS, stop_loss), (TAKE_PROFIT, take_profit)]


def existing(
    desk: OrderDesk, entry: OrderRequest, legs: Sequence[tuple[str, OrderRequest]]
) -> list[BrokerOrder] | None:
    """The bracket as placed when these ids were placed before as this same bracket; None
    when none of them is known; DuplicateOrder when any is known as something else."""
    orders = desk.ledger.orders
    ids = [entry.client_order_id, *(leg.client_order_id for _, leg in legs)]
    if not any(c in orders for c in ids):
        return None
    placed = orders.get(entry.client_order_id)
    same = placed is not None and _same(placed, entry)
    for role, leg in legs:
        order = orders.get(leg.client_order_id)
        meta = desk.ledger.meta_of(leg.client_order_id)
        if order is None or meta.parent != entry.client_order_id or meta.role != role:
            same = False
        elif not _same(order, leg):
            same = False
    if not same or len(desk.ledger.legs.get(entry.client_order_id, [])) != len(legs):
        raise DuplicateOrder(
            f"bracket {entry.client_order_id}: an id is known already as another order",
            code="client_order_id_in_use",
        )
    return [orders[c] for c in ids]


def _same(order: BrokerOrder, request: OrderRequest) -> bool:
    """Whether ``order`` was placed from ``request`` (prices and quantity may have been
    replaced since: not compared)."""
    return (order.symbol, order.side, order.order_type, order.time_in_force) == (
        request.symbol,
        request.side,
        request.order_type,
        request.time_in_force,
    )


def adopt(
    desk: OrderDesk, entry_id: str, stop_loss_id: str | None, take_profit_id: str | None
) -> list[BrokerOrder]:
    """The bracket placed under these ids, read back: [entry, stop_loss?, take_profit?].
    OrderNotFound when the entry is unknown or a leg is not this entry's leg in that role."""
    entry = desk.ledger.orders.get(entry_id)
    if entry is None:
        raise OrderNotFound(f"no order {entry_id}")
    found = [entry]
    for role, coid in ((STOP_LOSS, stop_loss_id), (TAKE_PROFIT, take_profit_id)):
        if coid is None:
            continue
        meta = desk.ledger.meta_of(coid)
        leg = desk.ledger.orders.get(coid)
        if leg is None or meta.parent != entry_id or meta.role != role:
            raise OrderNotFound(f"no {role} leg {coid} of bracket {entry_id}")
        found.append(leg)
    return found


# --- what follows a fill or the end of an order ----------------------------------------------


def after_fill(desk: OrderDesk, filled: BrokerOrder, qty: Decimal) -> None:
    """``filled`` just filled ``qty``: an entry's legs work for it; an exit ends the entry."""
    coid = filled.client_order_id
    parent = desk.ledger.meta_of(coid).parent
    if parent is not None:
        entry = desk.ledger.open.get(parent)
        if entry is not None:
            desk.set_status(entry, OrderStatus.CANCELED, f"bracket: exit {coid} filled")
        return
    why = f"bracket: entry {coid} filled {filled.filled_quantity}"
    for leg_id in desk.ledger.legs.get(coid, []):
        leg = desk.ledger.open.get(leg_id)
        if leg is None:
            continue  # cancelled (by request, or the other exit filled): stays so
        if leg.status is OrderStatus.NEW:
            desk.resize(leg, qty, why, OrderStatus.ACCEPTED)
        else:
            desk.resize(leg, leg.quantity + qty, why)


def after_close(desk: OrderDesk, order: BrokerOrder) -> None:
    """``order`` is final: an entry that filled nothing takes its held legs with it."""
    if order.filled_quantity > 0:
        return  # the legs protect what filled
    coid = order.client_order_id
    for leg_id in desk.ledger.legs.get(coid, []):
        leg = desk.ledger.open.get(leg_id)
        if leg is not None:
            why = f"bracket: entry {coid} {order.status.value} with nothing filled"
            desk.set_status(leg, OrderStatus.CANCELED, why)
