"""Orders at IB for ``IBBroker``: submit, brackets, cancel and modify (``replace``).

- **Submit** places the order with our client order id in ``orderRef`` and waits briefly for
  IB's first word, so a rejection (e.g. 201) is raised as ``OrderRejected``.
- **Cancel** sends cancelOrder for the order's id; IB's orderStatus tells the end (which may
  be a fill: a cancel can race one). An unknown id is ``OrderNotFound``, a final order
  ``OrderRejected`` with code ``order_not_open``.
- **Modify.** IB has no replace call: placeOrder with the order's own orderId changes it in
  place, so the orderId (``broker_order_id``) and orderRef (``client_order_id``) stay and IB
  holds one order, never two. What is sent is a copy of ib_async's order with the new terms
  (its ocaGroup, parentId... must stay as they were, or IB refuses with 105) and ``transmit``
  on (a bracket leg was placed with it off). IB confirms with an openOrder carrying the new
  terms; it refuses with an error for the order id (103, 104, 201, 10147...), and then the
  book keeps the original terms and status. Library trap: ib_async marks a trade Cancelled on
  any order error, a refused modify included, while IB keeps the order live; the book ignores
  that status while the modify is in flight, and ib_async's status is put back. No answer
  within ``ack_timeout`` is ``BrokerUnavailable`` (it may have landed: look the order up).
- **Brackets** (``submit_bracket``): the entry, then its exits as IB child orders
  (``parentId``) in one OCA group (``ocaType`` 2: a fill of one exit reduces the other by as much),
  ``transmit`` off on all but the last, so IB works none of them before it has them all. IB
  holds the children until the entry fills.

Refusal codes (``OrderRejected.code``) besides IB's own numbers: ``order_not_open`` (cancel or
replace of a final order, or one pending cancel for a replace), ``change_invalid`` (a price the
order's type does not have, a quantity not above what filled), ``replace_in_flight`` (a second
replace of one order before IB answered the first), and ``bracket_invalid`` /
``protective_price_invalid`` (``brokers.ib.brackets``).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from decimal import Decimal

from ib_async import IB, Contract, Order, Trade

from brokers.base import BrokerOrder, OrderChange, OrderRequest, OrderStatus, check_limit_price
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.ib import mapping as m
from brokers.ib.book import OrderBook, TrackedOrder
from brokers.ib.brackets import OCA_TYPE, check_bracket, oca_group

ORDER_NOT_OPEN = "order_not_open"
CHANGE_INVALID = "change_invalid"

# Codes IB sends about a live order that do not refuse a modify: 202 is a cancel (its status
# says so), 399 and 404 are holds, 10167 is about market data; 2100-2199 are notices.
_NOT_REFUSALS = frozenset({m.CANCELLED_CODE, 399, 404, 10167})

_Terms = tuple[Decimal, Decimal | None, Decimal | None]  # quantity, limit, stop


class OrderDesk:
    """The order half of ``IBBroker``; ``link`` answers the connected ``IB`` (or raises
    ``NotSent``), ``contract`` a qualified contract, ``account`` the account traded."""

    def __init__(
        self,
        book: OrderBook,
        *,
        client_id: int,
        link: Callable[[], IB],
        contract: Callable[[str], Awaitable[Contract]],
        account: Callable[[], str],
        ack_timeout: float,
    ) -> None:
        self._book = book
        self._client_id = client_id
        self._link = link
        self._contract = contract
        self._account = account
        self._ack_timeout = ack_timeout

    # -- placing -----------------------------------------------------------------------------

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        known = self._book.by_ref(order.client_order_id)
        if known is not None:  # idempotent: the orderRef is already at IB
            return known.snapshot()
        contract = await self._contract(order.symbol)
        known = self._book.by_ref(order.client_order_id)
        if known is not None:  # a twin submit got there while the contract was looked up
            return known.snapshot()
        tracked = self._place(contract, order, m.ib_order(order, account=self._account()))
        await self._await_ack([tracked])
        _raise_if_rejected(tracked)
        return tracked.snapshot()

    async def submit_bracket(
        self, entry: OrderRequest, stop_loss: OrderRequest | None, take_profit: OrderRequest | None
    ) -> list[BrokerOrder]:
        """The entry and its exits as one unit at IB; answers [entry, stop_loss?, take_profit?]
        (the ones given). Idempotent on the client order ids: a retry places only what IB
        does not have yet. Raises ``OrderRejected`` before sending anything for a malformed
        bracket, and when IB refuses the entry; a refused exit is reported by its status."""
        legs = [leg for leg in (stop_loss, take_profit) if leg is not None]
        check_bracket(entry, stop_loss, take_profit)
        contract = await self._contract(entry.symbol)
        missing = [leg for leg in legs if self._book.by_ref(leg.client_order_id) is None]
        parent = self._book.by_ref(entry.client_order_id)
        if parent is None:
            order = m.ib_order(entry, account=self._account())
            order.transmit = not missing  # IB works it only once the last child is in
            parent = self._place(contract, entry, order)
        elif missing and not parent.status.is_open:  # IB refuses children of a done parent
            _raise_if_rejected(parent)
            raise OrderRejected(f"entry {entry.client_order_id} is {parent.status.value}: its "
                                "exits cannot be attached", code=ORDER_NOT_OPEN)  # fmt: skip
        for n, leg in enumerate(missing):
            order = m.ib_order(leg, account=self._account())
            order.parentId = parent.order_id
            order.ocaGroup, order.ocaType = oca_group(entry.client_order_id), OCA_TYPE
            order.transmit = n == len(missing) - 1  # the last one sends them all
            self._place(contract, leg, order)
        placed = [parent, *(self._book.by_ref(leg.client_order_id) for leg in legs)]
        tracked = [t for t in placed if t is not None]
        await self._await_ack(tracked)
        _raise_if_rejected(parent)
        return [t.snapshot() for t in tracked]

    def _place(self, contract: Contract, request: OrderRequest, order: Order) -> TrackedOrder:
        ib = self._link()
        with m.vendor_errors(f"submit {request.client_order_id}"):
            trade = ib.placeOrder(contract, order)
        tracked = TrackedOrder(
            client_order_id=request.client_order_id,
            order_id=trade.order.orderId,
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            order_type=request.order_type,
            limit_price=request.limit_price,
            time_in_force=request.time_in_force,
            stop_price=request.stop_price,
            parent_order_id=order.parentId,
            oca_group=order.ocaGroup,
        )
        self._book.add(tracked)  # no await since the by_ref check: concurrent twins see it
        return tracked

    async def _await_ack(self, orders: list[TrackedOrder]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ack_timeout
        while any(o.status is OrderStatus.NEW for o in orders) and loop.time() < deadline:
            await self._book.wait_change(deadline - loop.time())

    # -- cancel ------------------------------------------------------------------------------

    async def cancel(self, client_order_id: str) -> None:
        tracked = self._open_order(client_order_id, "cancel")
        ib = self._link()
        trade = self._trade(ib, tracked)
        with m.vendor_errors(f"cancel {client_order_id}"):
            if trade is not None:
                ib.cancelOrder(trade.order)  # type: ignore[no-untyped-call]
            else:
                ib.client.cancelOrder(tracked.order_id, "")  # type: ignore[no-untyped-call]

    # -- modify ------------------------------------------------------------------------------

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        tracked = self._open_order(client_order_id, "replace")
        if tracked.modifying:
            raise OrderRejected(f"order {client_order_id}: a replace is already under way",
                                code="replace_in_flight")  # fmt: skip
        terms = _new_terms(tracked, change)
        ib = self._link()
        trade = self._trade(ib, tracked)
        if trade is not None and trade.isDone():  # ib_async would refuse to send it
            raise OrderRejected(f"order {client_order_id} is {trade.orderStatus.status} at IB",
                                code=ORDER_NOT_OPEN)  # fmt: skip
        contract = trade.contract if trade is not None else await self._contract(tracked.symbol)
        order = self._modified(trade, tracked, terms)
        prior = trade.orderStatus.status if trade is not None else ""
        acks, tracked.modifying, tracked.refusal = tracked.acks, True, None
        try:
            with m.vendor_errors(f"replace {client_order_id}"):
                ib.placeOrder(contract, order)
            await self._await_modify(tracked, acks, terms)
        finally:
            tracked.modifying = False
        if tracked.refusal is not None:
            if trade is not None and prior:  # ib_async cancelled its trade: the order lives
                trade.orderStatus.status = prior
            raise OrderRejected(f"IB refused to modify {client_order_id}: {tracked.refusal}",
                                code=tracked.refusal.split(":")[0])  # fmt: skip
        if tracked.acks > acks and _terms(tracked) == terms:
            return tracked.snapshot()  # confirmed (and maybe filled at once at its new terms)
        if not tracked.status.is_open:
            raise OrderRejected(f"order {client_order_id} became {tracked.status.value} before "
                                "the modify took effect", code=ORDER_NOT_OPEN)  # fmt: skip
        raise BrokerUnavailable(f"replace {client_order_id}: IB did not confirm within "
                                f"{self._ack_timeout}s; it may have landed")  # fmt: skip

    async def _await_modify(self, tracked: TrackedOrder, acks: int, terms: _Terms) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ack_timeout
        while loop.time() < deadline:
            if tracked.refusal is not None or not tracked.status.is_open:
                return
            if tracked.acks > acks and _terms(tracked) == terms:
                return
            await self._book.wait_change(deadline - loop.time())

    def _modified(self, trade: Trade | None, tracked: TrackedOrder, terms: _Terms) -> Order:
        if trade is not None:
            order = copy.copy(trade.order)  # ib_async's own stays as IB last confirmed it
        else:  # ib_async lost it (it never does for an open order of this client): rebuild
            order = m.ib_order(_request_of(tracked), account=self._account())
            order.orderId, order.parentId = tracked.order_id, tracked.parent_order_id
            if tracked.oca_group:
                order.ocaGroup, order.ocaType = tracked.oca_group, OCA_TYPE
        quantity, limit, stop = terms
        order.totalQuantity = float(quantity)
        if limit is not None:
            order.lmtPrice = float(limit)
        if stop is not None:
            order.auxPrice = float(stop)
        order.transmit = True
        return order

    def on_error(self, req_id: int, code: int, message: str) -> bool:
        """An IB error for an order id; True when it refused a modify in flight."""
        tracked = self._book.by_id(req_id)
        if tracked is None or not tracked.modifying:
            return False
        if code in _NOT_REFUSALS or 2100 <= code < 2200:
            return False
        tracked.refusal = f"{code}: {message}"
        self._book.notify()
        return True

    # -- helpers -----------------------------------------------------------------------------

    def _open_order(self, client_order_id: str, action: str) -> TrackedOrder:
        tracked = self._book.by_ref(client_order_id)
        if tracked is None:
            raise OrderNotFound(f"no IB order with orderRef {client_order_id!r}")
        if not tracked.status.is_open or (
            action == "replace" and tracked.status is OrderStatus.PENDING_CANCEL
        ):
            raise OrderRejected(f"order {client_order_id} is {tracked.status.value}: nothing "
                                f"to {action}", code=ORDER_NOT_OPEN)  # fmt: skip
        return tracked

    def _trade(self, ib: IB, tracked: TrackedOrder) -> Trade | None:
        return ib.wrapper.trades.get((self._client_id, tracked.order_id))


def _terms(tracked: TrackedOrder) -> _Terms:
    return tracked.quantity, tracked.limit_price, tracked.stop_price


def _new_terms(tracked: TrackedOrder, change: OrderChange) -> _Terms:
    """The order's terms after ``change``; refused (naming the field) when the change does not
    fit the order: a price its type does not have, or a quantity not above what filled."""
    limit = change.limit_price or tracked.limit_price
    stop = change.stop_price or tracked.stop_price
    try:
        check_limit_price(tracked.order_type, limit, stop)
    except ValueError as exc:
        raise OrderRejected(f"{exc} (order {tracked.client_order_id})",
                            code=CHANGE_INVALID) from None  # fmt: skip
    quantity = change.quantity or tracked.quantity
    if quantity <= tracked.filled:
        raise OrderRejected(
            f"quantity: {quantity} is not above the {tracked.filled} already filled of order "
            f"{tracked.client_order_id}", code=CHANGE_INVALID)  # fmt: skip
    return quantity, limit, stop


def _request_of(tracked: TrackedOrder) -> OrderRequest:
    return OrderRequest(
        client_order_id=tracked.client_order_id,
        symbol=tracked.symbol,
        side=tracked.side,
        quantity=tracked.quantity,
        order_type=tracked.order_type,
        limit_price=tracked.limit_price,
        time_in_force=tracked.time_in_force,
        stop_price=tracked.stop_price,
    )


def _raise_if_rejected(tracked: TrackedOrder) -> None:
    if tracked.status is OrderStatus.REJECTED:
        reason = tracked.reason or "rejected by IB"
        raise OrderRejected(reason, code=m.error_code(reason))
