"""Settling orders whose fate is unknown: a submit whose answer was lost and that no look-up
could place in time. Such an order is neither placed nor rejected; it is asked after until the
broker says what became of it:

- the broker knows it: its real state is applied (the book, the journal, the decision's order);
- the broker, answering, does not know it: it never reached the market and is journaled
  ``rejected``, its reservation released;
- the look-up fails: asked again later (backoff), while its exposure stays counted.

Reconciliation settles them too (``settle``), and the kill switch cancels them by
client_order_id; one it could not settle (its look-up failed, or it was still on the wire) it
hands on (``cancel_when_found``): found open, it is cancelled at once, never left resting after
a kill.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tenacity import AsyncRetrying, retry_if_result, stop_never, wait_exponential

from brokers.base import Broker, BrokerOrder, OrderRequest, OrderStatus
from brokers.errors import BrokerError

log = logging.getLogger("gateway.pipeline.settle")


class UnknownOrders:
    def __init__(
        self,
        broker: Broker,
        *,
        apply_order: Callable[[BrokerOrder], None],
        absent: Callable[[str, str], None],
        first_wait_s: float = 1.0,
        max_wait_s: float = 30.0,
    ):
        self._broker = broker
        self._apply_order = apply_order
        self._absent = absent
        self._first_wait_s = first_wait_s
        self._max_wait_s = max_wait_s
        self._pending: dict[str, OrderRequest] = {}
        self._wake = asyncio.Event()
        self._to_cancel: set[str] = set()
        self._cancelling: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._pending

    def add(self, request: OrderRequest) -> None:
        self._pending[request.client_order_id] = request
        self._wake.set()

    def cancel_when_found(self, client_order_id: str) -> None:
        """The kill switch could not settle this order: cancel it as soon as it is found open."""
        self._to_cancel.add(client_order_id)

    def settle(self, order: BrokerOrder) -> bool:
        """The broker reported this order (an event, reconciliation, a look-up): True if it
        was one of ours of unknown fate, now settled (the caller applies it)."""
        coid = order.client_order_id
        if self._pending.pop(coid, None) is None:
            return False
        log.warning(
            "an order of unknown fate is at the broker: %s",
            order.status.value,
            extra={"client_order_id": coid},
        )
        if coid in self._to_cancel:
            self._to_cancel.discard(coid)
            if order.is_open:  # after the caller applies it: the task runs on a later turn
                task = asyncio.get_running_loop().create_task(
                    self._cancel(order), name=f"cancel-found-{coid}"
                )
                self._cancelling.add(task)
                task.add_done_callback(self._cancelling.discard)
        return True

    async def _cancel(self, order: BrokerOrder) -> None:
        coid = order.client_order_id
        try:
            await self._broker.cancel(coid)
        except BrokerError as exc:
            log.error(
                "an order a kill could not settle was found open and its cancel failed: %s",
                exc,
                extra={"client_order_id": coid},
            )
            return
        log.warning(
            "an order a kill could not settle was found open: cancelled",
            extra={"client_order_id": coid},
        )
        self._apply_order(order.model_copy(update={"status": OrderStatus.CANCELED}))

    async def look_up_all(self) -> None:
        """Ask the broker once about every order of unknown fate."""
        for coid in list(self._pending):
            try:
                order = await self._broker.get_order(coid)
            except BrokerError as exc:
                log.info("look-up of %s failed, asking again later: %s", coid, exc)
                continue
            if coid not in self._pending:
                continue  # settled meanwhile by an event
            if order is not None:
                if self.settle(order):
                    self._apply_order(order)
            else:
                del self._pending[coid]
                self._to_cancel.discard(coid)
                self._absent(coid, "never reached the market: the broker has no such order")

    async def run(self) -> None:
        """Ask after pending orders, backing off while some stay unsettled; then wait for the
        next one. Cancelled on stop, with the cancels it started."""
        try:
            await self._ask_forever()
        finally:
            for task in list(self._cancelling):
                task.cancel()

    async def _ask_forever(self) -> None:
        while True:
            self._wake.clear()
            if not self._pending:
                await self._wake.wait()
            asking = AsyncRetrying(
                wait=wait_exponential(multiplier=self._first_wait_s, max=self._max_wait_s),
                retry=retry_if_result(lambda left: left > 0),
                stop=stop_never,
                sleep=asyncio.sleep,
            )
            await asking(self._ask_after_wait)

    async def _ask_after_wait(self) -> int:
        await asyncio.sleep(self._first_wait_s)  # give the broker a moment before the first
        await self.look_up_all()
        return len(self._pending)
