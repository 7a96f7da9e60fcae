"""A broker whose failures are scripted, for testing the retry layer (``brokers.retrying``).

``ScriptedBroker`` keeps real orders: a submit that lands puts the order in its book, where
``get_order`` finds it, and a second submit of a client_order_id it holds is refused with
``DuplicateOrder``, as Alpaca does. What each call does is taken from a per-method queue:

- an exception: raised, and nothing happens (for a submit: it did not land);
- ``LOST``: (submit only) the order lands, then the answer is lost (``BrokerUnavailable``);
- ``OK``: the call does what a healthy broker does.

When a method's queue is empty, ``otherwise`` answers: an exception raised on every call from
then on (a broker that keeps failing), or ``OK``. Every call is counted in ``calls``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from decimal import Decimal
from typing import Final

from brokers.base import (
    Account,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    OrderChange,
    OrderRequest,
    OrderStatus,
    Position,
    Quote,
    utcnow,
)
from brokers.errors import BrokerUnavailable, DuplicateOrder, OrderNotFound


class _Step:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


OK: Final = _Step("OK")
LOST: Final = _Step("LOST")
Action = _Step | BaseException


class ScriptedBroker:
    name = "scripted"

    def __init__(
        self,
        script: Mapping[str, Iterable[Action]] | None = None,
        *,
        otherwise: Action = OK,
    ):
        self._script = {method: deque(steps) for method, steps in (script or {}).items()}
        self._otherwise = otherwise
        self.calls: list[str] = []
        self.orders: dict[str, BrokerOrder] = {}
        self.placed: list[str] = []  # client_order_ids in the order they reached the market
        self.connects = 0

    def count(self, method: str) -> int:
        return self.calls.count(method)

    def _next(self, method: str) -> _Step:
        self.calls.append(method)
        queue = self._script.get(method)
        step = queue.popleft() if queue else self._otherwise
        if isinstance(step, BaseException):
            raise step
        return step

    # -- passed through by the retry layer

    @property
    def connected(self) -> bool:
        return self.connects > 0

    async def connect(self) -> None:
        self.connects += 1

    async def close(self) -> None:
        self.connects = 0

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        self.calls.append("subscribe_quotes")

    async def _no_events(self) -> AsyncIterator[BrokerEvent]:
        return
        yield  # an async generator that ends at once

    def events(self) -> AsyncIterator[BrokerEvent]:
        return self._no_events()

    # -- retried

    async def account(self) -> Account:
        self._next("account")
        return Account(equity=1000, cash=1000, buying_power=2000)

    async def positions(self) -> list[Position]:
        self._next("positions")
        return []

    async def open_orders(self) -> list[BrokerOrder]:
        self._next("open_orders")
        return [o for o in self.orders.values() if o.is_open]

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self._next("get_order")
        return self.orders.get(client_order_id)

    async def quote(self, symbol: str) -> Quote:
        self._next("quote")
        return Quote(symbol=symbol, bid=Decimal("99.9"), ask=Decimal("100.1"), ts=utcnow())

    async def cancel(self, client_order_id: str) -> None:
        self._next("cancel")
        order = self.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        self.orders[client_order_id] = order.model_copy(update={"status": OrderStatus.CANCELED})

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        self._next("replace")
        order = self.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        updates = {k: v for k, v in change.model_dump().items() if v is not None}
        self.orders[client_order_id] = replaced = order.model_copy(update=updates)
        return replaced

    async def cancel_all(self) -> CancelReport:
        self._next("cancel_all")
        open_ids = [o.client_order_id for o in self.orders.values() if o.is_open]
        for coid in open_ids:
            self.orders[coid] = self.orders[coid].model_copy(
                update={"status": OrderStatus.CANCELED}
            )
        return CancelReport(cancelled=[f"b-{coid}" for coid in open_ids])

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        step = self._next("submit")
        if order.client_order_id in self.orders:
            raise DuplicateOrder("client_order_id must be unique", status=422)
        placed = BrokerOrder(
            client_order_id=order.client_order_id,
            broker_order_id=f"b-{order.client_order_id}",
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            status=OrderStatus.ACCEPTED,
            order_type=order.order_type,
            limit_price=order.limit_price,
            time_in_force=order.time_in_force,
        )
        self.orders[order.client_order_id] = placed
        self.placed.append(order.client_order_id)
        if step is LOST:
            raise BrokerUnavailable("connection reset after the order was sent")
        return placed
