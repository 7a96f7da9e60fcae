"""The simulated broker, with the broker moments the order tests need played on demand: a
refused replace, a cancel that loses the race to a fill (or is taken and filled anyway), a lost
answer, order events lost on the link, a replace held on the wire, and a hook called as each
cancel or replace arrives (the tests read the journal from inside it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from brokers.base import BrokerEvent, BrokerOrder, OrderChange, OrderEvent
from brokers.errors import BrokerUnavailable, OrderRejected
from brokers.simulated import SimulatedBroker


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

    def _lose_answer(self) -> None:
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise BrokerUnavailable("simulated: connection lost before the answer arrived")

    def _fill_at_limit(self, client_order_id: str) -> None:
        """The market comes to a resting buy limit: it fills there."""
        order = self._ledger.orders[client_order_id]
        assert order.limit_price is not None
        self.set_quote(order.symbol, order.limit_price - 1, order.limit_price)

    async def cancel(self, client_order_id: str) -> None:
        self.on_call("cancel", client_order_id)
        if self.fill_on_cancel:
            self._fill_at_limit(client_order_id)
        if self.fill_after_cancel:
            await self._reach()
            self._fill_at_limit(client_order_id)
            return
        await super().cancel(client_order_id)
        self._lose_answer()

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        self.on_call("replace", client_order_id)
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        self.replaces.append((client_order_id, change))
        if self.refuse_replaces is not None:
            await self._reach()
            raise OrderRejected(self.refuse_replaces, code="replace_refused")
        now = await super().replace(client_order_id, change)
        self._lose_answer()
        return now
