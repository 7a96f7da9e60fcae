"""The fake TWS's market: orders placed, modified, cancelled, triggered and filled, and what each
client session is told about them.

What it understands of IB's order model:

- **Modify**: a placeOrder for an order id this client already used changes that order in
  place (quantity, limit, stop) and is answered with openOrder and orderStatus; a done order
  answers error 104, and ``TWSState.reject_modify`` (orderRef -> (code, text)) refuses the
  modify with that error, the order staying as it was.
- **Stops**: "STP" and "STP LMT" carry the stop in auxPrice; a buy stop triggers when the ask
  reaches it, a sell stop when the bid does; then a STP fills at the market and a STP LMT works
  as a limit.
- **Brackets**: an order with ``transmit`` off is held, unreported, until an order of its
  bracket (same parent) arrives with ``transmit`` on; then all go. A child (``parentId``) rests
  as PreSubmitted until its parent has filled, and is cancelled with its parent. Orders of one
  OCA group with ocaType 1 (a fill of one cancels the others) or 2 (a fill of one reduces the
  others by as much; one left with nothing to fill is cancelled).
- **A fill reported as a cancel** (``fill(..., reported_status="Cancelled")``): IB's way of
  telling a cancel that raced a fill; the execution is real, the orderStatus says Cancelled
  with nothing filled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import Callable

from tests.fakes.tws_wire import (
    FakeExecution,
    FakeOrder,
    Fields,
    TWSState,
    msg_account_value,
    msg_commission_report,
    msg_error,
    msg_exec_details,
    msg_open_order,
    msg_order_status,
    msg_position,
    now_text,
)


class Session:
    """One API client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 withhold: set[str]) -> None:  # fmt: skip
        self.reader = reader
        self.writer = writer
        self.withhold = withhold
        self.client_id: int | None = None
        self.market_data: dict[int, str] = {}  # reqId -> symbol
        self.positions_subscribed = False
        self.account_subscribed = ""

    def send(self, fields: Fields) -> None:
        if self.writer.is_closing() or fields[0] in self.withhold:
            return
        payload = "".join(f"{f}\0" for f in fields).encode()
        self.writer.write(struct.pack(">I", len(payload)) + payload)

    def sees(self, order: FakeOrder) -> bool:
        """TWS reports an order to the client that placed it, and to client 0."""
        return self.client_id is not None and self.client_id in (0, order.client_id)


def _price(text: str) -> float | None:
    return float(text) if text else None


class Market:
    """Orders and fills over ``state``; ``sessions`` answers the connected clients."""

    def __init__(self, state: TWSState, sessions: Callable[[], list[Session]]) -> None:
        self.state = state
        self._sessions = sessions

    # -- placeOrder

    def place(self, s: Session, f: Fields) -> None:
        # 3, orderId, contract (12 fields: conId symbol secType lastTrade strike right
        # multiplier exchange primaryExchange currency localSymbol tradingClass), secIdType,
        # secId, action 16, totalQuantity 17, orderType 18, lmtPrice 19, auxPrice 20, tif 21,
        # ocaGroup 22, account 23, openClose, origin, orderRef 26, transmit 27, parentId 28,
        # ... ocaType 47 (server version 176)
        order_id, symbol = int(f[1]), f[3]
        assert s.client_id is not None
        if self.state.swallow_orders:
            return
        known = self.by_id(s.client_id, order_id)
        if known is not None:
            self._modify(s, known, f)
            return
        self.state.next_order_id = max(self.state.next_order_id, order_id + 1)
        if symbol in self.state.reject_symbols:
            code, text = self.state.reject_symbols[symbol]
            s.send(msg_error(order_id, code, text))
            return
        o = FakeOrder(
            perm_id=self.new_perm_id(), order_id=order_id, client_id=s.client_id,
            account=f[23] or self.state.accounts[0], symbol=symbol, action=f[16],
            quantity=float(f[17]), order_type=f[18], limit_price=_price(f[19]), tif=f[21],
            order_ref=f[26], aux_price=_price(f[20]), parent_id=int(f[28] or 0),
            oca_group=f[22], oca_type=int(f[47] or 0), transmitted=False, status="PendingSubmit",
        )  # fmt: skip
        self.state.orders[o.perm_id] = o
        if f[27] == "1":
            self._transmit(o)

    def _transmit(self, last: FakeOrder) -> None:
        """``last`` and every held order of its bracket go to the market, parent first."""
        root = last.parent_id or last.order_id
        bracket = sorted(
            (o for o in self.state.orders.values()
             if o.client_id == last.client_id and not o.transmitted
             and root in (o.order_id, o.parent_id)),
            key=lambda o: o.order_id,
        )  # fmt: skip
        for o in bracket:
            o.transmitted = True
            o.status = "PreSubmitted" if self._held(o) else "Submitted"
            self.notify(o, open_order=True)
        for o in bracket:
            self.maybe_fill(o)

    def _modify(self, s: Session, o: FakeOrder, f: Fields) -> None:
        if o.order_ref in self.state.reject_modify:
            code, text = self.state.reject_modify[o.order_ref]
            if code == 202:  # IB cancelled the order instead: a status says so, then the error
                self.cancel(o)
            else:
                s.send(msg_error(o.order_id, code, text))
            return
        if not o.is_open:
            s.send(msg_error(o.order_id, 104, f"Cannot modify a filled order. ({o.status})"))
            return
        if f[27] != "1":  # TWS keeps an untransmitted change to itself: IB never sees it
            return
        o.quantity, o.limit_price, o.aux_price = float(f[17]), _price(f[19]), _price(f[20])
        if not o.transmitted:
            self._transmit(o)
            return
        self.notify(o, open_order=True)
        self.maybe_fill(o)

    # -- cancels

    def cancel_request(self, s: Session, f: Fields) -> None:
        order_id = int(f[2])
        o = next((o for o in self.state.orders.values()
                  if o.order_id == order_id and s.sees(o)), None)  # fmt: skip
        if o is None:
            s.send(msg_error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled "
                             "is not found."))  # fmt: skip
        elif not o.is_open:
            s.send(msg_error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled "
                             f"cannot be cancelled, state: {o.status}."))  # fmt: skip
        else:
            self.cancel(o)

    def cancel(self, o: FakeOrder) -> None:
        if o.perm_id in self.state.stuck_orders:
            return  # the cancel never reaches it: no status, ever
        o.status = "Cancelled"
        self.notify(o)
        for s in self._sessions():
            if s.sees(o) and o.order_id:
                s.send(msg_error(o.order_id, 202, "Order Canceled - reason:"))
        for child in self._children(o):  # a bracket's exits go with its entry
            if child.is_open:
                self.cancel(child)

    # -- the market

    def by_id(self, client_id: int, order_id: int) -> FakeOrder | None:
        return next((o for o in self.state.orders.values()
                     if (o.client_id, o.order_id) == (client_id, order_id)), None)  # fmt: skip

    def _children(self, o: FakeOrder) -> list[FakeOrder]:
        if not o.order_id:
            return []
        return [c for c in self.state.orders.values()
                if c.client_id == o.client_id and c.parent_id == o.order_id]  # fmt: skip

    def _held(self, o: FakeOrder) -> bool:
        """A child waits for its parent to fill."""
        if not o.parent_id:
            return False
        parent = self.by_id(o.client_id, o.parent_id)
        return parent is not None and parent.status != "Filled"

    def maybe_fill(self, o: FakeOrder) -> None:
        if o.symbol not in self.state.quotes or not o.is_open or not o.transmitted:
            return
        if self._held(o):
            return
        bid, ask = self.state.quotes[o.symbol]
        price = ask if o.action == "BUY" else bid
        if o.aux_price is not None and o.order_type.startswith("STP") and not o.triggered:
            if (o.action == "BUY" and ask < o.aux_price) or (
                o.action == "SELL" and bid > o.aux_price
            ):
                return
            o.triggered = True
        if o.limit_price is not None and (
            (o.action == "BUY" and price > o.limit_price)
            or (o.action == "SELL" and price < o.limit_price)
        ):
            return
        self.fill(o, o.quantity - o.filled, price)

    def fill(
        self, o: FakeOrder, qty: float, price: float, reported_status: str | None = None
    ) -> None:
        """Execute ``qty`` of an open order at ``price`` (partial fills welcome);
        ``reported_status`` is what the orderStatus then claims instead of the truth."""
        ex = self._execute(o, qty, price)
        status = msg_order_status(o, price)
        if reported_status is not None:  # IB's version: nothing filled, and that status
            told = dataclasses.replace(o, status=reported_status, filled=0.0, avg_price=0.0)
            status = msg_order_status(told, price)
        new_qty, new_cost = self.state.positions[o.symbol]
        account = self.state.accounts[0]
        for s in self._sessions():
            if s.sees(o):
                # TWS sends these two in either order; status_first shows the other one
                first, second = msg_exec_details(self.state, -1, ex), status
                if self.state.status_first:
                    first, second = second, first
                s.send(first)
                s.send(second)
                s.send(msg_commission_report(ex.exec_id))
            if s.positions_subscribed:
                s.send(msg_position(self.state, account, o.symbol, new_qty, new_cost))
            if s.account_subscribed:
                cash = self.state.account_values["TotalCashValue"]
                s.send(msg_account_value("TotalCashValue", cash, s.account_subscribed))
        self._after_fill(o, qty)

    def _execute(self, o: FakeOrder, qty: float, price: float) -> FakeExecution:
        o.avg_price = (o.avg_price * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        o.status = "Filled" if o.filled >= o.quantity else "Submitted"
        sign = 1 if o.action == "BUY" else -1
        held, cost = self.state.positions.get(o.symbol, (0.0, 0.0))
        new_qty = held + sign * qty
        new_cost = (held * cost + sign * qty * price) / new_qty if new_qty else 0.0
        self.state.positions[o.symbol] = (new_qty, new_cost)
        self.state.account_values["TotalCashValue"] -= sign * qty * price
        ex = FakeExecution(f"0000e{len(self.state.executions) + 1:04d}.01", o, qty, price,
                           now_text(), o.filled, o.avg_price)  # fmt: skip
        self.state.executions.append(ex)
        return ex

    def _after_fill(self, o: FakeOrder, qty: float) -> None:
        """OCA type 1: any fill cancels the rest of the group; type 2: reduces the rest by
        ``qty`` (cancelled when nothing is left); a filled parent frees its children."""
        if o.oca_group and o.oca_type in (1, 2):
            for other in list(self.state.orders.values()):
                if (other is not o and other.is_open and other.oca_group == o.oca_group
                        and other.client_id == o.client_id):  # fmt: skip
                    if o.oca_type == 2 and other.quantity - qty > other.filled:
                        other.quantity -= qty
                        self.notify(other, open_order=True)
                    else:
                        self.cancel(other)
        if o.status == "Filled":
            for child in self._children(o):
                if child.is_open and child.transmitted and child.status == "PreSubmitted":
                    child.status = "Submitted"
                    self.notify(child)
                    self.maybe_fill(child)

    def notify(self, o: FakeOrder, open_order: bool = False) -> None:
        for s in self._sessions():
            if s.sees(o):
                if open_order:
                    s.send(msg_open_order(self.state, o))
                s.send(msg_order_status(o))

    def new_perm_id(self) -> int:
        self.state.next_perm_id += 1
        return self.state.next_perm_id
