"""The simulated broker's order desk: places, fills, replaces and cancels orders on a ``Ledger``
against the market's quotes, and keeps one-cancels-other groups.

Synchronous and free of I/O: the broker wraps each call in one transaction of its state file and
publishes what the desk emits. Every rule is deterministic.

- Fills: an order that crosses the market fills at most ``fill_quantity_per_tick`` per quote or
  tick (all of it when None) and rests ``partially_filled`` for the rest. Each fill has its own
  id, ``f"{broker_order_id}-{n}"`` for the order's n-th fill, stable across restarts;
  ``filled_quantity`` and ``avg_fill_price`` are cumulative.
- Replace changes quantity, limit or stop in place (same client and broker order id); a replace
  that makes the order marketable fills it at once, as a new order would.
- One-cancels-other: when a member of a group fills (even partly), every other open member is
  reduced to the filling member's remaining quantity, and cancelled when nothing remains.
- Brackets (see ``brackets.py``): a leg is held until its entry fills; ``_fill`` and
  ``set_status`` tell ``brackets`` what happened to an entry or a leg.

Refusals (``OrderRejected.code``): ``unknown_symbol``, ``buying_power``, ``order_not_open`` (a
final order), ``not_replaceable`` (a market order), ``field_not_applicable`` (a price the order
type does not have), ``quantity_below_filled`` (a quantity not above what already filled),
``oco_invalid`` (a group of fewer than two orders, of several symbols, or an order already in a
group); ``OrderNotFound`` for an unknown client_order_id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace as with_meta
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.base import (
    BrokerOrder,
    Fill,
    OrderChange,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    assemble,
)
from brokers.errors import OrderNotFound, OrderRejected
from brokers.simulated import brackets
from brokers.simulated.ledger import ZERO, Ledger
from brokers.simulated.market import SimQuote, crossing_price, reserve_price, stop_reached
from brokers.simulated.state import NO_META, OrderMeta

Publish = Callable[[OrderEvent], None]


def with_fields(order: BrokerOrder, **changes: Any) -> BrokerOrder:
    """``order`` with some fields changed (the simulator's own, valid values)."""
    return assemble(BrokerOrder, {**order.__dict__, **changes})


def order_event(
    order: BrokerOrder, fill: Fill | None = None, reason: str | None = None
) -> OrderEvent:
    return assemble(OrderEvent, {"kind": "order", "order": order, "fill": fill, "reason": reason})


class OrderDesk:
    def __init__(
        self,
        ledger: Ledger,
        quotes: Mapping[str, SimQuote],
        *,
        publish: Publish,
        clock: Callable[[], datetime],
        margin: Decimal,
        fill_quantity_per_tick: Decimal | None = None,
    ):
        self.ledger = ledger
        self._quotes = quotes
        self._publish = publish
        self._clock = clock
        self._margin = margin
        self._per_tick = fill_quantity_per_tick

    # --- valuation ---------------------------------------------------------------------------

    def quote_of(self, symbol: str) -> SimQuote | None:
        return self._quotes.get(symbol)

    def mark(self, symbol: str, fallback: Decimal) -> Decimal:
        q = self._quotes.get(symbol)
        return q.mid if q is not None else fallback

    def equity(self) -> Decimal:
        return self.ledger.equity(self.mark)

    def _reserve(self, order: BrokerOrder) -> Decimal:
        return reserve_price(order, self._quotes.get(order.symbol))

    def buying_power(self) -> Decimal:
        return self.ledger.buying_power(self.mark, self._margin, self._reserve)

    def _check_buying_power(self, order: BrokerOrder, before: Decimal = ZERO) -> None:
        """A buy may add ``order``'s value less ``before`` (what it reserved already)."""
        if order.side is Side.BUY:
            grown = order.remaining_quantity * self._reserve(order) - before
            if grown > ZERO and grown > self.buying_power():
                raise OrderRejected("insufficient buying power", code="buying_power")

    # --- new orders --------------------------------------------------------------------------

    def place(self, request: OrderRequest) -> BrokerOrder:
        existing = self.ledger.orders.get(request.client_order_id)
        if existing is not None:
            return existing  # idempotent: the same client_order_id never makes a second order
        return self.work(self.accept(request), request.time_in_force)

    def accept(
        self,
        request: OrderRequest,
        *,
        status: OrderStatus = OrderStatus.ACCEPTED,
        meta: OrderMeta = NO_META,
    ) -> BrokerOrder:
        """Take ``request`` on the book (an id, stored; buying power checked for a new buy),
        without working it yet: ``work`` does."""
        if request.symbol not in self._quotes:
            raise OrderRejected(f"no market for {request.symbol}", code="unknown_symbol")
        # Every value comes from the validated request: no second validation.
        placed = assemble(
            BrokerOrder,
            {
                "client_order_id": request.client_order_id,
                "broker_order_id": "",
                "symbol": request.symbol,
                "side": request.side,
                "quantity": request.quantity,
                "filled_quantity": ZERO,
                "status": status,
                "limit_price": request.limit_price,
                "avg_fill_price": None,
                "order_type": request.order_type,
                "time_in_force": request.time_in_force,
                "stop_price": request.stop_price,
            },
        )
        if meta.parent is None:  # a bracket's leg is an exit: it needs no buying power
            self._check_buying_power(placed)
        placed = with_fields(placed, broker_order_id=self.ledger.new_broker_order_id())
        self.ledger.store(placed, meta)
        return placed

    def work(
        self, placed: BrokerOrder, time_in_force: TimeInForce, *, announced: bool = False
    ) -> BrokerOrder:
        """Fill what the market crosses now (an IOC's rest is cancelled); the order's event
        is published unless ``announced`` already."""
        result = self._try_fill(placed)
        if time_in_force is TimeInForce.IOC and result.is_open:
            reason = "ioc remainder" if result.filled_quantity else "ioc not marketable"
            return self.set_status(result, OrderStatus.CANCELED, reason)
        if result is placed and not announced:
            self._publish(order_event(placed))
        return result

    def publish(self, order: BrokerOrder, reason: str | None = None) -> None:
        self._publish(order_event(order, reason=reason))

    def resize(
        self, order: BrokerOrder, quantity: Decimal, reason: str, status: OrderStatus | None = None
    ) -> BrokerOrder:
        """``order`` with a new quantity (and status), stored and published with ``reason``."""
        changed = with_fields(order, quantity=quantity, status=status or order.status)
        self.ledger.store(changed)
        self._publish(order_event(changed, reason=reason))
        return changed

    # --- fills -------------------------------------------------------------------------------

    def match(self, symbol: str) -> list[BrokerOrder]:
        """Fill what ``symbol``'s quote crosses; the orders this changed (fills, and the other
        members of their groups), at their latest state."""
        before = {c: o for c, o in self.ledger.open.items() if o.symbol == symbol}
        for coid in before:
            order = self.ledger.open.get(coid)  # an earlier fill may have cancelled it (OCO)
            if order is not None:
                self._try_fill(order)
        return [self.ledger.orders[c] for c, o in before.items() if self.ledger.orders[c] is not o]

    def _try_fill(self, order: BrokerOrder) -> BrokerOrder:
        """One fill of ``order`` if the market crosses it now (triggering its stop first)."""
        quote = self._quotes.get(order.symbol)
        if quote is None:
            return order
        meta = self.ledger.meta_of(order.client_order_id)
        if brackets.held(order, meta):
            return order  # a bracket's leg works only once its entry filled
        if order.order_type.has_stop and not meta.triggered and stop_reached(order, quote):
            meta = with_meta(meta, triggered=True)
            self.ledger.store(order, meta)
        price = crossing_price(order, quote, meta.triggered)
        if price is None:
            return order
        return self._fill(order, meta, price)

    def _fill(self, order: BrokerOrder, meta: OrderMeta, price: Decimal) -> BrokerOrder:
        remaining = order.remaining_quantity
        qty = remaining if self._per_tick is None else min(remaining, self._per_tick)
        self.ledger.book_fill(order.symbol, order.side, qty, price)
        filled_qty = order.filled_quantity + qty
        avg = (order.filled_quantity * (order.avg_fill_price or ZERO) + qty * price) / filled_qty
        filled = with_fields(
            order,
            filled_quantity=filled_qty,
            avg_fill_price=avg,
            status=OrderStatus.FILLED if qty == remaining else OrderStatus.PARTIALLY_FILLED,
        )
        meta = with_meta(meta, fills=meta.fills + 1)
        self.ledger.store(filled, meta)
        fill_fields = {
            "client_order_id": order.client_order_id,
            "broker_order_id": order.broker_order_id,
            "symbol": order.symbol,
            "side": order.side,
            "quantity": qty,
            "price": price,
            "ts": self._clock(),
            "fill_id": f"{order.broker_order_id}-{meta.fills}",
        }
        # A fill of a price or quantity that is not positive is refused by the model, as ever.
        fill = assemble(Fill, fill_fields) if price > ZERO and qty > ZERO else Fill(**fill_fields)
        self.ledger.record_fill(fill)  # kept with the order: a lost event can be asked again
        self._publish(order_event(filled, fill))
        self._oco_after_fill(filled)
        brackets.after_fill(self, filled, qty)
        return self.ledger.orders[order.client_order_id]

    # --- cancel and replace ------------------------------------------------------------------

    def find_open(self, client_order_id: str) -> BrokerOrder:
        """The order, open; OrderNotFound or OrderRejected(order_not_open) otherwise."""
        order = self.ledger.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if not order.is_open:
            raise OrderRejected(
                f"order {client_order_id} is {order.status.value}", code="order_not_open"
            )
        return order

    def set_status(self, order: BrokerOrder, status: OrderStatus, reason: str) -> BrokerOrder:
        updated = with_fields(order, status=status)
        self.ledger.store(updated)
        self._publish(order_event(updated, reason=reason))
        if not updated.is_open:
            brackets.after_close(self, updated)
        return updated

    def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        """Change a resting order in place; a refusal leaves it exactly as it was."""
        order = self.find_open(client_order_id)
        changed = with_fields(order, **_checked_change(order, change))
        if self.ledger.meta_of(client_order_id).parent is None:  # a leg is an exit
            before = order.remaining_quantity * self._reserve(order)
            self._check_buying_power(changed, before=before)
        self.ledger.store(changed)
        self._publish(order_event(changed, reason="replaced"))
        return self._try_fill(changed)

    # --- one-cancels-other -------------------------------------------------------------------

    def link_oco(self, client_order_ids: Sequence[str]) -> str:
        """Put the open orders ``client_order_ids`` in one new group; its id is returned."""
        ids = list(dict.fromkeys(client_order_ids))
        if len(ids) < 2:
            raise OrderRejected("oco: needs at least two distinct orders", code="oco_invalid")
        orders = sorted((self.find_open(c) for c in ids), key=self._rank)
        if len({o.symbol for o in orders}) != 1:
            raise OrderRejected("oco: every order must be for one symbol", code="oco_invalid")
        for order in orders:
            group = self.ledger.meta_of(order.client_order_id).oco_group
            if group is not None:
                raise OrderRejected(
                    f"oco: {order.client_order_id} is in group {group} already",
                    code="oco_invalid",
                )
        # Named after its oldest member: unique (so are broker ids), whatever order ids came in.
        group = f"oco-{orders[0].broker_order_id}"
        for order in orders:
            meta = self.ledger.meta_of(order.client_order_id)
            self.ledger.store(order, with_meta(meta, oco_group=group))
        return group

    def _rank(self, order: BrokerOrder) -> int:
        return self.ledger.rank[order.client_order_id]

    def oco_group(self, client_order_id: str) -> list[str]:
        """Every member of ``client_order_id``'s group, itself included, in the order the
        broker took them ([] when in none)."""
        group = self.ledger.meta_of(client_order_id).oco_group
        return [] if group is None else list(self.ledger.oco_groups.get(group, []))

    def _oco_members(self, client_order_id: str) -> list[str]:
        return [c for c in self.oco_group(client_order_id) if c != client_order_id]

    def _oco_after_fill(self, filled: BrokerOrder) -> None:
        """The others of a group can fill only what the filling member still may."""
        left = filled.remaining_quantity
        for coid in self._oco_members(filled.client_order_id):
            other = self.ledger.open.get(coid)
            if other is None or other.remaining_quantity <= left:
                continue
            why = f"oco: {filled.client_order_id} filled {filled.filled_quantity}"
            if left == ZERO:
                self.set_status(other, OrderStatus.CANCELED, why)
            else:
                reduced = with_fields(other, quantity=other.filled_quantity + left)
                self.ledger.store(reduced)
                self._publish(order_event(reduced, reason=why))


def _checked_change(order: BrokerOrder, change: OrderChange) -> dict[str, Any]:
    """The fields ``change`` sets on ``order``; OrderRejected naming the field when it cannot."""
    if order.order_type is OrderType.MARKET:
        raise OrderRejected("a market order cannot be replaced", code="not_replaceable")
    fields: dict[str, Any] = {}
    if change.limit_price is not None:
        if not order.order_type.has_limit:
            raise OrderRejected(
                f"limit_price: not allowed on a {order.order_type.value} order",
                code="field_not_applicable",
            )
        fields["limit_price"] = change.limit_price
    if change.stop_price is not None:
        if not order.order_type.has_stop:
            raise OrderRejected(
                f"stop_price: not allowed on a {order.order_type.value} order",
                code="field_not_applicable",
            )
        fields["stop_price"] = change.stop_price
    if change.quantity is not None:
        if change.quantity <= order.filled_quantity:
            raise OrderRejected(
                f"quantity: {change.quantity} must exceed the {order.filled_quantity} filled",
                code="quantity_below_filled",
            )
        fields["quantity"] = change.quantity
    return fields
