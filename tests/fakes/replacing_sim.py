"""The simulated broker with an in-place replace, for the gateway's replace tests until the
simulated broker's own replace lands (its branch replaces this). It also plays the broker
moments the tests need: a refused replace, a cancel that loses the race to a fill, and a hook
called as each cancel or replace arrives (the tests read the journal from inside it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from brokers.base import BrokerEvent, BrokerOrder, OrderChange, OrderEvent, assemble
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.simulated import SimulatedBroker
from brokers.simulated.market import crossing_price


class ReplacingSim(SimulatedBroker):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.refuse_replaces: str | None = None
        self.fill_on_cancel = False  # the order fills at its limit before the cancel arrives
        self.fill_after_cancel = False  # the cancel is taken, then the order fills all the same
        self.lose_answers = 0  # the next N cancels or replaces take effect; their answer is lost
        self.on_call: Callable[[str, str], None] = lambda method, coid: None
        self.mute = False  # while True, no order event is streamed (a link that lost them)
        self.replaces: list[tuple[str, OrderChange]] = []
        self.arrived = asyncio.Event()  # set when a replace reaches the broker
        self.hold: asyncio.Event | None = None  # while set and not yet released, replaces wait

    def _publish(self, event: BrokerEvent) -> None:
        if not (self.mute and isinstance(event, OrderEvent)):
            super()._publish(event)

    async def cancel(self, client_order_id: str) -> None:
        self.on_call("cancel", client_order_id)
        if self.fill_on_cancel:
            await self._reach()
            order = self._ledger.orders[client_order_id]
            with self._changing():
                assert order.limit_price is not None
                self._fill(order, order.limit_price)
        if self.fill_after_cancel:
            await self._reach()
            order = self._ledger.orders[client_order_id]
            with self._changing():
                assert order.limit_price is not None
                self._fill(order, order.limit_price)
            return
        await super().cancel(client_order_id)
        self._lose_answer()

    def _lose_answer(self) -> None:
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise BrokerUnavailable("simulated: connection lost before the answer arrived")

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        self.on_call("replace", client_order_id)
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        await self._reach()
        self.replaces.append((client_order_id, change))
        order = self._ledger.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if not order.is_open:
            raise OrderRejected(f"order {client_order_id} is {order.status.value}", code="not_open")
        if self.refuse_replaces is not None:
            raise OrderRejected(self.refuse_replaces, code="replace_refused")
        updates = {k: v for k, v in change.model_dump().items() if v is not None}
        with self._changing():
            now = assemble(BrokerOrder, {**order.__dict__, **updates})
            self._ledger.store(now)
            quote = self._quotes.get(now.symbol)
            price = crossing_price(now, quote) if quote is not None else None
            if price is not None:
                return self._fill(now, price)
            event = {"kind": "order", "order": now, "fill": None, "reason": "replaced"}
            self._publish(assemble(OrderEvent, event))
        self._lose_answer()
        return now
