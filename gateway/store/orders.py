"""Writing an order's states and fills: one row per change, none for a state journaled already.

The order state last written per client_order_id is remembered, so a broker event that repeats
it (the fill the submit answer already carried) adds its fill row but not a second identical
order state. What a failed write remembered is forgotten (``forget``).
"""

from __future__ import annotations

from brokers.base import BrokerOrder, Fill, OrderRequest
from gateway.models import FillRecord
from gateway.store import stream
from gateway.store.db import Driver
from gateway.store.schema import ORDER_COLUMNS, StoredOrder
from gateway.store.transactions import Tainted

# An order's journaled state: broker_order_id, status, filled_quantity, avg_fill_price, and
# what a replace changes: quantity, limit_price, stop_price (the broker's values, always).
OrderState = tuple[str, str, str, str | None, str, str | None, str | None]
OrderUpdate = tuple[BrokerOrder, Fill | None, str | None]

# How many orders' last journaled state is remembered (newest kept).
STATES_KEPT = 10_000


class OrderRows:
    def __init__(self) -> None:
        self._states: dict[str, OrderState] = {}
        # Whose each recent order is (strategy, signal_id): what a fill's event names.
        self._owners: dict[str, tuple[str | None, str | None]] = {}

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
            str(order.quantity),
            _text(order.limit_price),
            _text(order.stop_price),
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
        *,
        strategy: str | None = None,
        parent_id: str | None = None,
        role: str | None = None,
    ) -> None:
        """The order about to be sent, as ``pending_submit`` until the broker answers."""
        db.execute(
            "INSERT INTO orders (client_order_id, signal_id, symbol, side, quantity, "
            "order_type, limit_price, time_in_force, valued_at, status, submit_count, "
            "created_at, updated_at, strategy, stop_price, parent_id, role) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?,?,?,?,?)",
            (
                order.client_order_id,
                signal_id,
                order.symbol,
                order.side.value,
                str(order.quantity),
                order.order_type.value,
                _text(order.limit_price),
                order.time_in_force.value,
                valued_at,
                "pending_submit",
                now,
                now,
                strategy,
                _text(order.stop_price),
                parent_id,
                role,
            ),
        )
        self._remember_owner(order.client_order_id, strategy, signal_id)

    def _remember_owner(self, coid: str, strategy: str | None, signal_id: str | None) -> None:
        owners = self._owners
        owners.pop(coid, None)
        owners[coid] = (strategy, signal_id)
        if len(owners) > STATES_KEPT:
            del owners[next(iter(owners))]

    def _owner(self, db: Driver, coid: str) -> tuple[str | None, str | None]:
        owner = self._owners.get(coid)
        if owner is None:
            row = db.execute(
                "SELECT strategy, signal_id FROM orders WHERE client_order_id=?", (coid,)
            ).fetchone()
            owner = (row[0], row[1]) if row else (None, None)
            self._remember_owner(coid, *owner)
        return owner

    def write_state(
        self,
        db: Driver,
        order: BrokerOrder,
        state: OrderState,
        now: str,
        detail: str | None = None,
    ) -> None:
        coid = order.client_order_id
        row = db.execute(
            "UPDATE orders SET broker_order_id=?, status=?, filled_quantity=?, avg_fill_price=?, "
            "quantity=?, limit_price=?, stop_price=?, "
            f"updated_at=? WHERE client_order_id=? RETURNING {ORDER_COLUMNS}",
            (*state, now, coid),
        ).fetchone()
        if row is None:
            # An order we did not send (adopted from the broker): journal it as external.
            row = db.execute(
                "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity, "
                "order_type, limit_price, time_in_force, status, filled_quantity, "
                "avg_fill_price, external, created_at, updated_at, stop_price) "
                f"VALUES (?,?,?,?,?,?,?,?,?,?,?,1,?,?,?) RETURNING {ORDER_COLUMNS}",
                (
                    order.client_order_id,
                    order.broker_order_id,
                    order.symbol,
                    order.side.value,
                    str(order.quantity),
                    order.order_type.value,
                    _text(order.limit_price),
                    order.time_in_force.value,
                    order.status.value,
                    str(order.filled_quantity),
                    _text(order.avg_fill_price),
                    now,
                    now,
                    _text(order.stop_price),
                ),
            ).fetchone()
        stored = StoredOrder(*row)
        self._remember_owner(coid, stored.strategy, stored.signal_id)
        stream.append_order(db, stored, now)
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
            self.write_fill(db, fill, now)

    def write_fill(self, db: Driver, fill: Fill, now: str) -> None:
        """A fill, once: the broker's fill_id recognises one reported again (a reconnect's
        catch-up, a repeated event), which adds no row and no event."""
        ts = fill.ts.isoformat()
        row = db.execute(
            "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (client_order_id, fill_id) WHERE fill_id <> '' "
            "DO NOTHING RETURNING id",
            (
                fill.client_order_id,
                fill.fill_id,
                fill.symbol,
                fill.side.value,
                str(fill.quantity),
                str(fill.price),
                ts,
            ),
        ).fetchone()
        if row is None:
            return
        try:
            strategy, signal_id = self._owner(db, fill.client_order_id)
            record = FillRecord(
                fill_id=fill.fill_id or f"journal-{row[0]}",
                client_order_id=fill.client_order_id,
                strategy=strategy,
                signal_id=signal_id,
                symbol=fill.symbol,
                side=fill.side,
                quantity=fill.quantity,
                price=fill.price,
                ts=ts,
            )
            stream.append_fill(db, record, now)
        except BaseException:
            # A lone fill joins the open group without a savepoint (see ``statements``): its
            # row goes with the failure, so no fill ever lands without its stream event.
            _undo_fill(db, row[0])
            raise

    def statements(self, updates: list[OrderUpdate]) -> int:
        """How many statements a batch writes that need a savepoint to be undone together
        (one or none: no savepoint). A lone fill counts as one: ``write_fill`` undoes its own
        row (the broker's fill after the decision wrote the order's state is the hot path's
        one fill, and a savepoint around it cost two statements per signal)."""
        if len(updates) != 1:
            return 2
        order, fill, detail = updates[0]
        if self.new_state(order, detail) is None:
            return int(fill is not None)
        return 3 + (fill is not None) * 3


def _undo_fill(db: Driver, fill_row: int) -> None:
    """Delete the fill row a failed write made; if the backend dropped the transaction there
    is nothing to delete, and if the delete fails the group has to go (``Tainted``)."""
    if not db.in_transaction:
        return
    try:
        db.execute("DELETE FROM fills WHERE id=?", (fill_row,))
    except db.errors as exc:
        raise Tainted(str(exc)) from exc


def _text(value: object) -> str | None:
    return None if value is None else str(value)
