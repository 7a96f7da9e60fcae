"""Legs follow their position: when another order shrinks a protected position, its legs shrink
to what is left (a replace at the broker); when it closes, they are cancelled, so a stop can
never fire into a position that is gone (freqtrade #12528, #11608 are exactly that bug).

The broker itself handles a bracket's own life (legs held until the entry fills, one exit
cancelling the other); this only answers fills of *other* orders in a symbol that has legs.
A leg the broker closed meanwhile (its sibling filled, the kill switch cancelled it) is not a
failure: the refusal is logged and the leg's own events tell its state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

from brokers.base import Broker, BrokerOrder, OrderChange
from brokers.errors import BrokerError, OrderRejected
from gateway.pipeline.brackets import SUFFIX
from gateway.risk.book import Book

log = logging.getLogger("gateway.pipeline.legs")

ZERO = Decimal(0)
# What the adapters call an order that is final already.
NOT_OPEN = frozenset({"order_not_open", "not_open"})


class LegKeeper:
    def __init__(
        self, *, broker: Broker, book: Book, apply_order: Callable[[BrokerOrder], None]
    ) -> None:
        self._broker = broker
        self._book = book
        self._apply_order = apply_order
        self._tasks: set[asyncio.Task[None]] = set()

    def after_fill(self, order: BrokerOrder) -> None:
        """``order`` just filled some: if it is not a leg or a bracket entry, the legs of its
        symbol follow what is left of the position."""
        coid = order.client_order_id
        book = self._book
        if coid in book.legs or self.entry_of(coid):
            return
        if not any(c in book.legs for c in self._legs_of(order.symbol)):
            return
        task = asyncio.create_task(self.follow(order.symbol), name=f"legs-{order.symbol}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def entry_of(self, coid: str) -> bool:
        """True when ``coid`` is an entry with legs (its legs are named after it): two look-ups,
        not a scan of every leg ever named (that made each fill cost more as the day went on)."""
        legs = self._book.legs
        return any(coid + suffix in legs for suffix in SUFFIX.values())

    def _legs_of(self, symbol: str) -> list[str]:
        return [
            coid
            for coid, tracked in self._book.orders.items()
            if coid in self._book.legs and tracked.order.symbol == symbol
        ]

    async def follow(self, symbol: str) -> None:
        """Shrink or cancel the open legs of ``symbol`` to what its position holds now."""
        left = abs(self._book.position_qty(symbol))
        for coid in self._legs_of(symbol):
            tracked = self._book.orders.get(coid)
            if tracked is None:
                continue
            leg = tracked.order
            try:
                if left == ZERO:
                    await self._broker.cancel(coid)
                    log.info("position %s closed: leg %s cancelled", symbol, coid)
                elif leg.remaining_quantity > left:
                    change = OrderChange(quantity=leg.filled_quantity + left)
                    self._apply_order(await self._broker.replace(coid, change))
                    log.info("position %s shrank to %s: leg %s follows", symbol, left, coid)
            except OrderRejected as exc:
                if exc.code in NOT_OPEN:
                    # Closed by the broker meanwhile (its sibling filled, an earlier follow
                    # cancelled it): its own event tells; nothing is wrong.
                    log.debug("leg %s closed already: %s", coid, exc)
                    continue
                log.warning(
                    "leg %s could not follow its position (%s): %s",
                    coid,
                    symbol,
                    exc,
                    extra={"client_order_id": coid},
                )
            except BrokerError as exc:
                log.warning(
                    "leg %s could not follow its position (%s): %s",
                    coid,
                    symbol,
                    exc,
                    extra={"client_order_id": coid},
                )

    async def drain(self) -> None:
        """Wait for the legs being adjusted (a flatten waits before it closes a position)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
