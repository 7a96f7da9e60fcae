"""The journal's writes for what a strategy does to an order it sent: cancel and replace.

All are hard writes (the caller learns whether they reached the disk, and commits before it
goes on): a cancel's or a replace's intent is committed before the broker sees it, so a crash
in between leaves a row that says what was asked; a replace's outcome writes the order's new
quantity and prices, its ``order`` event and the ``decision`` event in one transaction.
"""

from __future__ import annotations

from brokers.base import BrokerOrder
from gateway.store import stream
from gateway.store.db import Driver
from gateway.store.orders import OrderRows
from gateway.store.schema import INSERT_UNDECIDED_SIGNAL
from gateway.store.transactions import Transactions

CANCEL_REQUESTED = "cancel_requested"
REPLACE_REQUESTED = "replace_requested"

# The journal keeps a replace in the signals table (its signal_id shares the namespace of the
# signals'); its body starts with this key, which no Signal has, so recovery tells them apart.
REPLACE_KEY = "replace_of"


def is_replace_body(body: str) -> bool:
    return body.startswith('{"' + REPLACE_KEY + '"')


class AmendWrites:
    """Mixed into ``Journal``: its transaction manager, connection and order rows."""

    _tx: Transactions
    _db: Driver
    _orders: OrderRows

    def _stamp(self) -> str:
        raise NotImplementedError  # the journal's clock

    def record_cancel_intent(self, client_order_id: str, status: str, by: str) -> int:
        """A cancel about to be sent: committed before the broker is called (the order's
        status is unchanged until the broker answers). Returns the ticket."""
        now = self._stamp()
        how = self._tx.begin(1)
        try:
            self._db.execute(
                "INSERT INTO order_events (client_order_id, status, detail, at) VALUES (?,?,?,?)",
                (client_order_id, status, f"{CANCEL_REQUESTED} by {by}", now),
            )
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer=False)

    def record_replace_intent(
        self,
        *,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        client_order_id: str,
        status: str,
        defer: bool = False,
    ) -> int:
        """A replace about to be sent: its signal row (undecided) and the order's event."""
        now = self._stamp()
        how = self._tx.begin(2)
        try:
            self._db.execute(
                INSERT_UNDECIDED_SIGNAL,
                (signal_id, body_hash, body, strategy, symbol, client_order_id, now),
            )
            self._db.execute(
                "INSERT INTO order_events (client_order_id, status, detail, at) VALUES (?,?,?,?)",
                (client_order_id, status, f"{REPLACE_REQUESTED}: {body}", now),
            )
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer)

    def record_replace_decision(
        self,
        signal_id: str,
        decision_json: str,
        outcome: str,
        order: BrokerOrder | None,
        *,
        valued_at: str | None = None,
        detail: str,
        defer: bool = False,
    ) -> int:
        """A replace's decision; with ``order``, the order as the broker now holds it: its new
        quantity and prices (and ``valued_at``, the price the checks valued it at)."""
        now = self._stamp()
        db = self._db
        how = self._tx.begin(2)
        try:
            row = db.execute(
                "UPDATE signals SET decision=?, outcome=?, decided_at=? WHERE signal_id=? "
                "RETURNING strategy",
                (decision_json, outcome, now, signal_id),
            ).fetchone()
            stream.append(db, stream.DECISION, row[0] if row else None, decision_json, now)
            if order is not None:
                self._write_replaced(order, valued_at, now, detail)
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer)

    def _write_replaced(
        self, order: BrokerOrder, valued_at: str | None, now: str, detail: str
    ) -> None:
        db = self._db
        if valued_at is not None:
            db.execute(
                "UPDATE orders SET valued_at=? WHERE client_order_id=?",
                (valued_at, order.client_order_id),
            )
        # The order's state carries its quantity and prices: the broker's new ones.
        state = self._orders.new_state(order, detail)
        assert state is not None  # a detail always makes a state to write
        self._orders.write_state(db, order, state, now, detail)
