"""The simulated paper account in memory: cash, positions, every order (with the simulator's
own ``OrderMeta`` beside it), the one-cancels-other groups, the legs of each bracket, the id
counter and how often each client_order_id reached submit().

Synchronous and free of I/O. Every change is noted, so that the broker can write what one call
changed as one transaction (``pending``) before the call returns, and then ``settle`` it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from brokers.base import BrokerOrder, Fill, Side, position_after_fill
from brokers.simulated.state import NO_META, AccountSnapshot, Changes, OrderMeta

ZERO = Decimal(0)


@dataclass(slots=True)
class SimPosition:
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO


class Ledger:
    def __init__(self, cash: Decimal, next_id: int = 1):
        self.cash = cash
        self.next_id = next_id
        self.positions: dict[str, SimPosition] = {}
        self.orders: dict[str, BrokerOrder] = {}  # by client_order_id, every order ever
        self.open: dict[str, BrokerOrder] = {}  # the resting ones, so matching stays O(open)
        self.by_broker_id: dict[str, str] = {}
        self.meta: dict[str, OrderMeta] = {}  # by client_order_id; NO_META when absent
        self.oco_groups: dict[str, list[str]] = {}  # group id -> members, in the order taken
        self.legs: dict[str, list[str]] = {}  # a bracket's entry -> its legs, as placed
        self.exits: set[str] = set()  # every bracket's legs
        self.rank: dict[str, int] = {}  # client_order_id -> when the broker took it (0, 1, ...)
        self.submit_counts: dict[str, int] = {}
        self._account_changed = False
        self._changed_positions: set[str] = set()
        self._changed_orders: set[str] = set()
        self._changed_counts: set[str] = set()
        self._new_fills: list[Fill] = []  # executions since the last settle

    @classmethod
    def restore(cls, snapshot: AccountSnapshot) -> Ledger:
        ledger = cls(snapshot.cash, snapshot.next_id)
        for symbol, (qty, avg_price) in snapshot.positions.items():
            ledger.positions[symbol] = SimPosition(qty, avg_price)
        for order, meta in snapshot.orders:
            ledger.store(order, meta)
        ledger.submit_counts = dict(snapshot.submit_counts)
        ledger.settle()  # what was read is on disk already
        return ledger

    # --- changes -----------------------------------------------------------------------------

    def count_submit(self, client_order_id: str) -> None:
        self.submit_counts[client_order_id] = self.submit_counts.get(client_order_id, 0) + 1
        self._changed_counts.add(client_order_id)

    def new_broker_order_id(self) -> str:
        broker_id = f"sim-{self.next_id}"
        self.next_id += 1
        self._account_changed = True
        return broker_id

    def meta_of(self, client_order_id: str) -> OrderMeta:
        return self.meta.get(client_order_id, NO_META)

    def store(self, order: BrokerOrder, meta: OrderMeta | None = None) -> None:
        """Keep ``order`` (and ``meta`` when given; otherwise its meta stays as it was)."""
        coid = order.client_order_id
        self.rank.setdefault(coid, len(self.rank))
        if meta is not None:
            old_group = self.meta_of(coid).oco_group
            if old_group != meta.oco_group:
                if old_group is not None:
                    self.oco_groups[old_group].remove(coid)
                if meta.oco_group is not None:
                    members = self.oco_groups.setdefault(meta.oco_group, [])
                    members.append(coid)
                    members.sort(key=self.rank.__getitem__)  # as after a restore: rowid order
            if meta.parent is not None and coid not in self.legs.get(meta.parent, []):
                self.legs.setdefault(meta.parent, []).append(coid)  # a leg stays its entry's
                self.exits.add(coid)
            self.meta[coid] = meta
        self.orders[order.client_order_id] = order
        self.by_broker_id[order.broker_order_id] = order.client_order_id
        if order.is_open:
            self.open[order.client_order_id] = order
        else:
            self.open.pop(order.client_order_id, None)
        self._changed_orders.add(order.client_order_id)

    def book_fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        """Cash and position after a fill of ``qty`` at ``price``."""
        self.cash -= (qty if side is Side.BUY else -qty) * price
        self._account_changed = True
        pos = self.positions.setdefault(symbol, SimPosition())
        pos.qty, pos.avg_price = position_after_fill(pos.qty, pos.avg_price, side, qty, price)
        if pos.qty == ZERO:
            del self.positions[symbol]
        self._changed_positions.add(symbol)

    def record_fill(self, fill: Fill) -> None:
        """An execution, written with the order it filled (``executions.py``)."""
        self._new_fills.append(fill)

    @property
    def new_fills(self) -> list[Fill]:
        return self._new_fills

    # --- valuation ---------------------------------------------------------------------------

    def equity(self, mark: Callable[[str, Decimal], Decimal]) -> Decimal:
        """Cash plus positions at ``mark(symbol, avg_price)``."""
        value = sum((p.qty * mark(s, p.avg_price) for s, p in self.positions.items()), ZERO)
        return self.cash + value

    def buying_power(
        self,
        mark: Callable[[str, Decimal], Decimal],
        margin: Decimal,
        reserve: Callable[[BrokerOrder], Decimal],
    ) -> Decimal:
        """Equity x margin, less gross position value and what open buy orders reserve
        (``reserve(order)``: the price each remaining unit is valued at). A bracket's leg
        reserves nothing: it closes the position its entry opened, counted already."""
        gross = sum((abs(p.qty) * mark(s, p.avg_price) for s, p in self.positions.items()), ZERO)
        open_buys = sum(
            (
                # A limit is its own reserve: the common case skips the call (a hot path).
                o.remaining_quantity * (o.limit_price if o.limit_price is not None else reserve(o))
                for c, o in self.open.items()
                if o.side is Side.BUY and c not in self.exits
            ),
            ZERO,
        )
        return max(self.equity(mark) * margin - gross - open_buys, ZERO)

    # --- what to write -----------------------------------------------------------------------

    def pending(self) -> Changes:
        """Everything changed since the last ``settle``, at its current value."""
        positions: dict[str, tuple[Decimal, Decimal] | None] = {}
        for symbol in self._changed_positions:
            pos = self.positions.get(symbol)
            positions[symbol] = None if pos is None else (pos.qty, pos.avg_price)
        return Changes(
            account=(self.cash, self.next_id) if self._account_changed else None,
            positions=positions,
            # In the order the broker took them: the file keeps that order (rowid) for a restore.
            orders={c: (self.orders[c], self.meta_of(c)) for c in self._changed_in_rank()},
            submit_counts={c: self.submit_counts[c] for c in self._changed_counts},
            fills=list(self._new_fills),
        )

    def _changed_in_rank(self) -> list[str]:
        return sorted(self._changed_orders, key=self.rank.__getitem__)

    def settle(self) -> None:
        """The pending changes are written (or nothing needs them): forget them."""
        self._account_changed = False
        self._changed_positions.clear()
        self._changed_orders.clear()
        self._changed_counts.clear()
        self._new_fills.clear()
