"""The gateway's view of the account: cash, positions, open orders and in-flight reservations.

Order updates are applied idempotently by their cumulative filled quantity, so the same fill seen
twice (in the submit answer and again on the event stream) moves the position once. Reservations
hold the exposure of orders that passed the checks but have no broker answer yet, so concurrent
signals see each other's exposure before any of them reaches the broker.

Risk to the stop: an order whose bracket carries a stop counts |qty| x |price - stop| at risk,
a position protected by live stop legs counts their real distance, and everything else counts
its value x stop_loss_percent (``at_risk``). A bracket's legs are exits, not new risk: they add
no exposure, no open buy and no pending sell (``legs`` names them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from brokers.base import Account, BrokerOrder, OrderStatus, Position, Side, position_after_fill

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
    stop: Decimal | None = None  # the protective stop its bracket carries


@dataclass(frozen=True, slots=True)
class Protection:
    """A position's cover by live stop legs (``/v1/status``'s ``protection``)."""

    symbol: str
    qty: Decimal
    protected_qty: Decimal
    stop_prices: list[Decimal]
    at_risk: Decimal

    def as_json(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "qty": float(self.qty),
            "protected": self.protected_qty == abs(self.qty),
            "protected_qty": float(self.protected_qty),
            "stop_prices": [float(p) for p in self.stop_prices],
            "at_risk": float(self.at_risk),
        }


@dataclass(slots=True)
class TrackedOrder:
    order: BrokerOrder
    price: Decimal  # the price the order was valued at when it passed the checks
    stop: Decimal | None = None  # the protective stop its bracket carries


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
        # Bracket legs by client_order_id: their role (stop_loss, take_profit).
        self.legs: dict[str, str] = {}
        # Open legs per symbol, in the order the book took them (a fill's legs are found
        # without a scan of every open order).
        self._open_legs: dict[str, dict[str, None]] = {}
        # Live stop legs per symbol: client_order_id -> (quantity left, stop price).
        self._stop_legs: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
        # Open orders and reservations with a protective stop: their exposure, and the sum
        # of |qty| x |price - stop| over them.
        self._protected_exposure = ZERO
        self._stop_risk = ZERO
        # Entries' protective stops, kept from the reservation to the order.
        self._entry_stops: dict[str, Decimal] = {}
        # Symbols whose position a stop leg protected (or was sent to protect) since it opened:
        # one left without its stop is a lost protection, not a position never protected.
        self.guarded: set[str] = set()

    # --- broker truth ------------------------------------------------------------------------

    def load_account(self, account: Account) -> None:
        self.cash = account.cash

    def load_positions(self, positions: Iterable[Position]) -> None:
        self.holdings = {p.symbol: Holding(p.qty, p.avg_price) for p in positions if p.qty != ZERO}

    def correct_position(self, symbol: str, position: Position | None) -> None:
        """Take the broker's figure for one symbol (reconciliation); None: flat there."""
        if position is None or position.qty == ZERO:
            self.holdings.pop(symbol, None)
            self.guarded.discard(symbol)
        else:
            self.holdings[symbol] = Holding(position.qty, position.avg_price)

    def filled_since(self, seq: int) -> set[str]:
        """The symbols that filled after ``fill_seq`` was ``seq``."""
        return {symbol for symbol, at in self._filled_at.items() if at > seq}

    # --- running totals ----------------------------------------------------------------------

    def _account_for(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        sign: int,
        stop: Decimal | None = None,
    ) -> None:
        exposure = qty * price * sign
        self._open_exposure += exposure
        if stop is not None:
            self._protected_exposure += exposure
            self._stop_risk += qty * abs(price - stop) * sign
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
        if res.stop is not None:
            self._entry_stops[res.client_order_id] = res.stop
        self._account_for(res.symbol, res.side, res.quantity, res.price, +1, res.stop)

    def add_legs(self, roles: dict[str, str]) -> None:
        """Name a bracket's legs (client_order_id -> role) before the broker can report them."""
        self.legs.update(roles)

    def open_legs(self, symbol: str) -> list[str]:
        """The open bracket legs on ``symbol`` (client_order_ids, oldest state first)."""
        return list(self._open_legs.get(symbol, ()))

    def leg_symbols(self) -> list[str]:
        """The symbols with an open bracket leg."""
        return [symbol for symbol, legs in self._open_legs.items() if legs]

    def set_entry_stop(self, client_order_id: str, stop: Decimal) -> None:
        """The protective stop of an entry held from the journal (a restart)."""
        self._entry_stops[client_order_id] = stop

    def release(self, client_order_id: str) -> None:
        res = self.reservations.pop(client_order_id, None)
        if res is not None:
            self._account_for(res.symbol, res.side, res.quantity, res.price, -1, res.stop)

    def _untrack(self, client_order_id: str) -> TrackedOrder | None:
        tracked = self.orders.pop(client_order_id, None)
        if tracked is not None:
            order = tracked.order
            if client_order_id in self.legs:
                self._stop_legs.get(order.symbol, {}).pop(client_order_id, None)
                self._open_legs.get(order.symbol, {}).pop(client_order_id, None)
            else:
                self._account_for(
                    order.symbol,
                    order.side,
                    order.remaining_quantity,
                    tracked.price,
                    -1,
                    tracked.stop,
                )
        return tracked

    def _hold(self, order: BrokerOrder, price: Decimal) -> None:
        """Hold an open order: a leg as a live exit, any other order as exposure."""
        coid = order.client_order_id
        stop = None if coid in self.legs else self._entry_stops.get(coid)
        self.orders[coid] = TrackedOrder(order, price, stop)
        if coid not in self.legs:
            self._account_for(order.symbol, order.side, order.remaining_quantity, price, +1, stop)
            return
        self._open_legs.setdefault(order.symbol, {})[coid] = None
        if self.legs[coid] == "stop_loss" and order.stop_price is not None:
            legs = self._stop_legs.setdefault(order.symbol, {})
            legs[coid] = (order.remaining_quantity, order.stop_price)
            if self.entry_filled(coid) != ZERO:  # a held leg guards nothing yet
                self.guarded.add(order.symbol)

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
            if self.legs.get(coid + "-sl") == "stop_loss":
                self.guarded.add(order.symbol)  # an entry with a stop leg (brackets.SUFFIX)
        else:
            delta = ZERO
            if order.filled_quantity < before:
                # A stale update arrived after a newer one: keep the larger fill.
                order = order.model_copy(update={"filled_quantity": before})
        if order.is_open:
            self._hold(order, price)
        else:
            self.final_fills[coid] = order.filled_quantity
            self._entry_stops.pop(coid, None)
            if self.legs.get(coid) == "stop_loss" and order.status is OrderStatus.REJECTED:
                self.guarded.add(order.symbol)  # asked for, refused: the position lacks it
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
            self._hold(order, price)
        else:
            self.final_fills[coid] = order.filled_quantity
            self._entry_stops.pop(coid, None)

    @contextmanager
    def set_aside(self, client_order_id: str) -> Iterator[TrackedOrder | None]:
        """Hold the open order out of every total for the block (a replace is checked as the
        order it makes, without the one it replaces), then put it back as it was."""
        tracked = self._untrack(client_order_id)
        try:
            yield tracked
        finally:
            if tracked is not None:
                self._hold(tracked.order, tracked.price)

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
            self.guarded.discard(symbol)

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

    def at_risk(self, marks: dict[str, Decimal], stop_loss_percent: Decimal) -> Decimal:
        """What heat is made of: money at risk over positions, open orders and reservations,
        each to its stop (a live stop leg, a bracket's stop) or at ``stop_loss_percent``."""
        unprotected = self._open_exposure - self._protected_exposure
        total = unprotected * stop_loss_percent + self._stop_risk
        for symbol in self.holdings:
            total += self._position_risk(symbol, marks, stop_loss_percent)[0]
        return total

    def entry_filled(self, leg: str) -> Decimal | None:
        """What the entry of the bracket leg ``leg`` has filled; None when the book does not
        know the entry (it ended before a restart: its legs are as the broker has them). A
        leg whose entry filled nothing is held by the broker: it protects nothing yet,
        whatever status the broker shows for it (Alpaca's "held" reads as accepted)."""
        entry = leg.rsplit("-", 1)[0]
        tracked = self.orders.get(entry)
        if tracked is not None:
            return tracked.order.filled_quantity
        if entry in self.reservations:
            return ZERO  # not even placed yet
        return self.final_fills.get(entry)

    def _position_risk(
        self, symbol: str, marks: dict[str, Decimal], stop_loss_percent: Decimal
    ) -> tuple[Decimal, Decimal, list[Decimal]]:
        """A position's money at risk, the quantity its live stop legs leave uncovered, and
        their stop prices."""
        holding = self.holdings[symbol]
        mark = marks.get(symbol, holding.avg_price)
        left = abs(holding.qty)
        at_risk = ZERO
        stops = []
        exit_side = Side.SELL if holding.qty > ZERO else Side.BUY
        for coid, (qty, stop) in self._stop_legs.get(symbol, {}).items():
            tracked = self.orders.get(coid)
            if tracked is not None and tracked.order.side is not exit_side:
                continue  # a stop on the side that grows the position protects nothing
            entry_filled = self.entry_filled(coid)
            if entry_filled is not None:
                qty = min(qty, entry_filled)
                if qty == ZERO:
                    continue  # held (its entry filled nothing): it protects nothing yet
            covered = min(qty, left)
            at_risk += covered * abs(mark - stop)
            left -= covered
            stops.append(stop)
        return at_risk + left * mark * stop_loss_percent, left, sorted(stops)

    def protection(self, marks: dict[str, Decimal], stop_loss_percent: Decimal) -> list[Protection]:
        """Per position: whether live stop legs cover it, at what prices, and the money at
        risk counted for it (to the stops, the rest at ``stop_loss_percent``)."""
        rows = []
        for symbol, holding in sorted(self.holdings.items()):
            at_risk, left, stops = self._position_risk(symbol, marks, stop_loss_percent)
            rows.append(Protection(symbol, holding.qty, abs(holding.qty) - left, stops, at_risk))
        return rows

    def market_value(self, marks: dict[str, Decimal]) -> Decimal:
        return sum((h.qty * marks.get(s, h.avg_price) for s, h in self.holdings.items()), ZERO)

    def open_buy_notional(self) -> Decimal:
        return self._open_buy

    def positions(self, marks: dict[str, Decimal]) -> list[Position]:
        return [
            Position(symbol=s, qty=h.qty, avg_price=h.avg_price, market_price=marks.get(s))
            for s, h in sorted(self.holdings.items())
        ]
