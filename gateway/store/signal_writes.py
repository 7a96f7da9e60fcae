"""The journal's writes for a signal: its intent (the order about to be sent, and a bracket's
legs), a refusal before any order existed, and the decision that completes its row.

All are hard writes: the caller learns whether they reached the disk (a ticket to commit and
wait on), and nothing is sent to the broker before its intent is committed.
"""

from __future__ import annotations

from brokers.base import BrokerOrder, OrderRequest
from gateway.store import stream
from gateway.store.db import Driver
from gateway.store.orders import OrderRows
from gateway.store.schema import INSERT_UNDECIDED_SIGNAL
from gateway.store.transactions import JOINED, Transactions


class SignalWrites:
    """Mixed into ``Journal``: its transaction manager, connection and order rows."""

    _tx: Transactions
    _db: Driver
    _orders: OrderRows

    def _stamp(self) -> str:
        raise NotImplementedError  # the journal's clock

    def record_intent(
        self,
        *,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        order: OrderRequest | None,
        valued_at: str | None,
        defer: bool = False,
        legs: list[tuple[OrderRequest, str]] | None = None,
    ) -> int:
        """The signal, and the order about to be sent (with its bracket's ``legs`` and their
        roles): committed before the broker is called. Returns the ticket of the group it
        joined (see ``commit``)."""
        tx = self._tx
        if order is not None:
            self._orders.forget(order.client_order_id)
        now = self._stamp()
        if legs and order is not None:
            return self._record_bracket_intent(
                signal_id, body_hash, body, strategy, symbol, order, valued_at, legs, defer
            )
        # Two inserts, and no savepoint when joining the open group: if the second fails, the
        # first is undone by deleting the row it created (the first failing undoes itself). If
        # even the delete fails (a full disk may refuse it), the whole group goes: a signal row
        # without its order must never reach the disk.
        how = tx.begin(1)
        db = self._db
        try:
            db.execute(
                INSERT_UNDECIDED_SIGNAL,
                (
                    signal_id,
                    body_hash,
                    body,
                    strategy,
                    symbol,
                    order and order.client_order_id,
                    now,
                ),
            )
        except BaseException as exc:
            raise tx.undo(how, exc) from exc
        try:
            if order is not None:
                self._orders.write_intent(db, signal_id, order, valued_at, now, strategy=strategy)
        except BaseException as exc:
            if how == JOINED and db.in_transaction:
                try:
                    db.execute("DELETE FROM signals WHERE signal_id=?", (signal_id,))
                except db.errors as inner:
                    raise tx.abandon(inner) from exc
            raise tx.undo(how, exc) from exc
        return tx.end(how, defer)

    def _record_bracket_intent(
        self,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        order: OrderRequest,
        valued_at: str | None,
        legs: list[tuple[OrderRequest, str]],
        defer: bool,
    ) -> int:
        """An entry and its legs: several rows, all or none (under a savepoint)."""
        now = self._stamp()
        rows, db = self._orders, self._db
        how = self._tx.begin(2 + len(legs))
        try:
            db.execute(
                INSERT_UNDECIDED_SIGNAL,
                (signal_id, body_hash, body, strategy, symbol, order.client_order_id, now),
            )
            rows.write_intent(db, signal_id, order, valued_at, now, strategy=strategy)
            for leg, role in legs:
                rows.forget(leg.client_order_id)
                rows.write_intent(
                    db,
                    signal_id,
                    leg,
                    None,
                    now,
                    strategy=strategy,
                    parent_id=order.client_order_id,
                    role=role,
                )
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer)

    def record_refusal(
        self,
        *,
        signal_id: str,
        body_hash: str,
        body: str,
        strategy: str,
        symbol: str,
        decision_json: str,
        outcome: str,
        defer: bool = False,
    ) -> int:
        """A signal refused before any order existed: its row, and its decision's event."""
        now = self._stamp()
        how = self._tx.begin(2)
        try:
            self._db.execute(
                "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, decision, "
                "outcome, received_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (signal_id, body_hash, body, strategy, symbol, decision_json, outcome, now, now),
            )
            stream.append(self._db, stream.DECISION, strategy, decision_json, now)
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer)

    def record_decision(
        self,
        signal_id: str,
        decision_json: str,
        outcome: str,
        order: BrokerOrder | None = None,
        defer: bool = False,
        strategy: str | None = None,
    ) -> int:
        """The decision that completes a signal's row; ``strategy``, when the caller knows it
        (the hot path does), saves reading it back for the decision's event."""
        now = self._stamp()
        rows = self._orders
        state = None if order is None else rows.new_state(order, None)
        how = self._tx.begin(2)
        try:
            if strategy is None:
                row = self._db.execute(
                    "UPDATE signals SET decision=?, outcome=?, decided_at=? WHERE signal_id=? "
                    "RETURNING strategy",
                    (decision_json, outcome, now, signal_id),
                ).fetchone()
                strategy = row[0] if row else None
            else:
                self._db.execute(
                    "UPDATE signals SET decision=?, outcome=?, decided_at=? WHERE signal_id=?",
                    (decision_json, outcome, now, signal_id),
                )
            stream.append(self._db, stream.DECISION, strategy, decision_json, now)
            if order is not None and state is not None:
                rows.write_state(self._db, order, state, now)
        except BaseException as exc:
            raise self._tx.undo(how, exc) from exc
        return self._tx.end(how, defer)
