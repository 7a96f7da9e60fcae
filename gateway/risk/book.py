"""The gateway's view of the account: cash, positions, open orders and in-flight reservations.

Order updates are applied idempotently by their cumulative filled quantity, so the same fill seen
twice (in the submit answer and again on the event stream) moves the position once. Reservations
hold the exposure of orders that passed the checks but have no broker answer yet, so concurrent
signals see each other's exposure before any of them reaches the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from brokers.base import Account, BrokerOrder, Position, Side, position_after_fill

ZERO = Decimal(0)


@dataclass(slots=True)
class Holding:
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO


@dataclass(slots=True)
class Reservation:
    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal


@dataclass(slots=True)
class TrackedOrder:
    order: BrokerOrder
    price: Decimal  # the price the order was valued at when it passed the checks


class Book:
    """Running totals keep the per-signal cost independent of how many orders rest."""

    def __init__(self) -> None:
        self.cash: Decimal = ZERO
        self.holdings: dict[str, Holding] = {}
        self.orders: dict[str, TrackedOrder] = {}  # open orders only
        self.final_fills: dict[str, Decimal] = {}  # closed orders: filled quantity, for idempotency
        # Orders whose fills so far are in the positions loaded from the broker at a restart,
        # though their state is not known yet: their next update adds no fill.
        self.filled_before_start: set[str] = set()
        # Fills applied, numbered: reconciliation leaves alone a symbol that filled while the
        # broker's answers were on their way (they are older than the book there).
        self.fill_seq = 0
        self._filled_at: dict[str, int] = {}
        self.reservations: dict[str, Reservation] = {}
        self._open_exposure = ZERO
        self._open_buy = ZERO
        self._pending: dict[str, Decimal] = {}
        self._pending_sell: dict[str, Decimal] = {}

    # --- broker truth ------------------------------------------------------------------------

    def load_account(self, account: Account) -> None:
        self.cash = account.cash

    def load_positions(self, positions: Iterable[Position]) -> None:
        self.holdings = {p.symbol: Holding(p.qty, p.avg_price) for p in positions if p.qty != ZERO}

    def correct_position(self, symbol: str, position: Position | None) -> None:
        """Take the broker's figure for one symbol (reconciliation); None: flat there."""
        if position is None or position.qty == ZERO:
            self.holdings.pop(symbol, None)
        else:
            self.holdings[symbol] = Holding(position.qty, position.avg_price)

    def filled_since(self, seq: int) -> set[str]:
        """The symbols that filled after ``fill_seq`` was ``seq``."""
        return {symbol for symbol, at in self._filled_at.items() if at > seq}

    # --- running totals ----------------------------------------------------------------------

    def _account_for(
        self, symbol: str, side: Side, qty: Decimal, price: Decimal, sign: int
    ) -> None:
        exposure = qty * price * sign
        self._open_exposure += exposure
        if side is Side.BUY:
            self._open_buy += exposure
        else:
            self._pending_sell[symbol] = self._pending_sell.get(symbol, ZERO) + qty * sign
        signed = qty * sign if side is Side.BUY else -qty * sign
        self._pending[symbol] = self._pending.get(symbol, ZERO) + signed

    # --- reservations and orders -------------------------------------------------------------

    def reserve(self, res: Reservation) -> None:
        self.release(res.client_order_id)
        self.reservations[res.client_order_id] = res
        self._account_for(res.symbol, res.side, res.quantity, res.price, +1)

    def release(self, client_order_id: str) -> None:
        res = self.reservations.pop(client_order_id, None)
        if res is not None:
            self._account_for(res.symbol, res.side, res.quantity, res.price, -1)

    def _untrack(self, client_order_id: str) -> TrackedOrder | None:
        tracked = self.orders.pop(client_order_id, None)
        if tracked is not None:
            order = tracked.order
            self._account_for(order.symbol, order.side, order.remaining_quantity, tracked.price, -1)
        return tracked

    def apply_order(self, order: BrokerOrder, *, valued_at: Decimal | None = None) -> Decimal:
        """Record a broker order state; returns the newly filled quantity (0 if none)."""
        coid = order.client_order_id
        reservation = self.reservations.get(coid)
        self.release(coid)
        previous = self._untrack(coid)
        if previous is not None:
            before, before_avg = previous.order.filled_quantity, previous.order.avg_fill_price
        else:
            before, before_avg = self.final_fills.get(coid, ZERO), None
        if coid in self.filled_before_start:
            self.filled_before_start.discard(coid)
            before = max(before, order.filled_quantity)
        price = valued_at or (previous.price if previous else None)
        price = price or (reservation.price if reservation else None)
        price = price or order.limit_price or order.avg_fill_price or ZERO
        delta = order.filled_quantity - before
        if delta > ZERO and order.avg_fill_price is not None:
            # Cumulative notional difference gives the exact price of the new part.
            prior = (before_avg or order.avg_fill_price) * before
            fill_price = (order.avg_fill_price * order.filled_quantity - prior) / delta
            self._fill(order.symbol, order.side, delta, fill_price)
        else:
            delta = ZERO
            if order.filled_quantity < before:
                # A stale update arrived after a newer one: keep the larger fill.
                order = order.model_copy(update={"filled_quantity": before})
        if order.is_open:
            self.orders[coid] = TrackedOrder(order, price)
            self._account_for(order.symbol, order.side, order.remaining_quantity, price, +1)
        else:
            self.final_fills[coid] = order.filled_quantity
        return delta

    def track(self, order: BrokerOrder, price: Decimal) -> None:
        """Hold an order at this state (the journal's, or the broker's at a restart) without
        replaying its fills: positions come from the broker, and reconciliation settles any
        difference. Replaces whatever was held for it (a reservation, an older state)."""
        coid = order.client_order_id
        self.release(coid)
        self._untrack(coid)
        self.filled_before_start.discard(coid)
        if order.is_open:
            self.orders[coid] = TrackedOrder(order, price)
            self._account_for(order.symbol, order.side, order.remaining_quantity, price, +1)
        else:
            self.final_fills[coid] = order.filled_quantity

    @contextmanager
    def set_aside(self, client_order_id: str) -> Iterator[TrackedOrder | None]:
        """Hold the open order out of every total for the block (a replace is checked as the
        order it makes, without the one it replaces), then put it back as it was."""
        tracked = self._untrack(client_order_id)
        try:
            yield tracked
        finally:
            if tracked is not None:
                order = tracked.order
                self.orders[client_order_id] = tracked
                self._account_for(
                    order.symbol, order.side, order.remaining_quantity, tracked.price, +1
                )

    def _fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        self.fill_seq += 1
        self._filled_at[symbol] = self.fill_seq
        self.cash -= (qty if side is Side.BUY else -qty) * price
        holding = self.holdings.setdefault(symbol, Holding())
        holding.qty, holding.avg_price = position_after_fill(
            holding.qty, holding.avg_price, side, qty, price
        )
        if holding.qty == ZERO:
            del self.holdings[symbol]

    # --- measures ----------------------------------------------------------------------------

    def open_orders(self) -> list[BrokerOrder]:
        return [t.order for t in self.orders.values()]

    def position_qty(self, symbol: str) -> Decimal:
        holding = self.holdings.get(symbol)
        return holding.qty if holding else ZERO

    def pending_qty(self, symbol: str) -> Decimal:
        """Signed quantity still to fill on open orders and reservations for ``symbol``."""
        return self._pending.get(symbol, ZERO)

    def pending_sell_qty(self, symbol: str) -> Decimal:
        """Quantity still to fill on open sells and in-flight sell reservations for ``symbol``
        (the short rule counts these; pending buys may never fill, so they do not offset them)."""
        return self._pending_sell.get(symbol, ZERO)

    def positions_exposure(self, marks: dict[str, Decimal]) -> Decimal:
        return sum((abs(h.qty) * marks.get(s, h.avg_price) for s, h in self.holdings.items()), ZERO)

    def gross_exposure(self, marks: dict[str, Decimal]) -> Decimal:
        """Sum of |value| of positions, open orders and reservations (what heat is made of)."""
        return self.positions_exposure(marks) + self._open_exposure

    def market_value(self, marks: dict[str, Decimal]) -> Decimal:
        return sum((h.qty * marks.get(s, h.avg_price) for s, h in self.holdings.items()), ZERO)

    def open_buy_notional(self) -> Decimal:
        return self._open_buy

    def positions(self, marks: dict[str, Decimal]) -> list[Position]:
        return [
            Position(symbol=s, qty=h.qty, avg_price=h.avg_price, market_price=marks.get(s))
            for s, h in sorted(self.holdings.items())
        ]
