"""Writing an order's states and fills: one row per change, none for a state journaled already.

The order state last written per client_order_id is remembered, so a broker event that repeats
it (the fill the submit answer already carried) adds its fill row but not a second identical
order state. What a failed write remembered is forgotten (``forget``).
"""

from __future__ import annotations

from brokers.base import BrokerOrder, Fill, OrderRequest
from gateway.store.db import Driver

# An order's journaled state: broker_order_id, status, filled_quantity, avg_fill_price.
OrderState = tuple[str, str, str, str | None]
OrderUpdate = tuple[BrokerOrder, Fill | None, str | None]

# How many orders' last journaled state is remembered (newest kept).
STATES_KEPT = 10_000


class OrderRows:
    def __init__(self) -> None:
        self._states: dict[str, OrderState] = {}

    def forget(self, client_order_id: str | None = None) -> None:
        if client_order_id is None:
            self._states.clear()
        else:
            self._states.pop(client_order_id, None)

    def new_state(self, order: BrokerOrder, detail: str | None) -> OrderState | None:
        """The order's state to journal, or None when this very state is journaled already
        and there is no detail to add."""
        state = (
            order.broker_order_id,
            order.status.value,
            str(order.filled_quantity),
            str(order.avg_fill_price) if order.avg_fill_price is not None else None,
        )
        if detail is None and self._states.get(order.client_order_id) == state:
            return None
        return state

    def write_intent(
        self,
        db: Driver,
        signal_id: str,
        order: OrderRequest,
        valued_at: str | None,
        now: str,
    ) -> None:
        """The order about to be sent, as ``pending_submit`` until the broker answers."""
        db.execute(
            "INSERT INTO orders (client_order_id, signal_id, symbol, side, quantity, "
            "order_type, limit_price, time_in_force, valued_at, status, submit_count, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?)",
            (
                order.client_order_id,
                signal_id,
                order.symbol,
                order.side.value,
                str(order.quantity),
                order.order_type.value,
                str(order.limit_price) if order.limit_price is not None else None,
                order.time_in_force.value,
                valued_at,
                "pending_submit",
                now,
                now,
            ),
        )

    def write_state(
        self,
        db: Driver,
        order: BrokerOrder,
        state: OrderState,
        now: str,
        detail: str | None = None,
    ) -> None:
        coid = order.client_order_id
        cur = db.execute(
            "UPDATE orders SET broker_order_id=?, status=?, filled_quantity=?, avg_fill_price=?, "
            "updated_at=? WHERE client_order_id=?",
            (*state, now, coid),
        )
        if cur.rowcount == 0:
            # An order we did not send (adopted from the broker): journal it as external.
            db.execute(
                "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity, "
                "order_type, limit_price, time_in_force, status, filled_quantity, "
                "avg_fill_price, external, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,1,?,?)",
                (
                    order.client_order_id,
                    order.broker_order_id,
                    order.symbol,
                    order.side.value,
                    str(order.quantity),
                    order.order_type.value,
                    str(order.limit_price) if order.limit_price is not None else None,
                    order.time_in_force.value,
                    order.status.value,
                    str(order.filled_quantity),
                    str(order.avg_fill_price) if order.avg_fill_price is not None else None,
                    now,
                    now,
                ),
            )
        db.execute(
            "INSERT INTO order_events (client_order_id, status, filled_quantity, detail, at) "
            "VALUES (?,?,?,?,?)",
            (coid, state[1], state[2], detail, now),
        )
        states = self._states
        states.pop(coid, None)
        states[coid] = state
        if len(states) > STATES_KEPT:
            del states[next(iter(states))]  # the oldest: forgetting one only costs a rewrite

    def write_update(self, db: Driver, update: OrderUpdate, now: str) -> None:
        order, fill, detail = update
        state = self.new_state(order, detail)
        if state is not None:
            self.write_state(db, order, state, now, detail)
        if fill is not None:
            db.execute(
                "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, "
                "at) VALUES (?,?,?,?,?,?,?)",
                (
                    fill.client_order_id,
                    fill.fill_id,
                    fill.symbol,
                    fill.side.value,
                    str(fill.quantity),
                    str(fill.price),
                    fill.ts.isoformat(),
                ),
            )

    def statements(self, updates: list[OrderUpdate]) -> int:
        """How many statements a batch writes, at most (one needs no savepoint)."""
        if len(updates) != 1:
            return 2
        order, fill, detail = updates[0]
        return (self.new_state(order, detail) is not None) * 2 + (fill is not None)
