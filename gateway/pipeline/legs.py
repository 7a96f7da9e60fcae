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

from brokers.base import Broker, BrokerOrder, OrderChange, Side
from brokers.errors import BrokerError, OrderRejected
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
        # One follow at a time per symbol: two fills' follows racing on the wire would let the
        # broker apply an older position's quantity last (a stop covering more than is held).
        self._locks: dict[str, asyncio.Lock] = {}

    def after_fill(self, order: BrokerOrder) -> None:
        """``order`` just filled some: if it is not a leg, the legs of its symbol follow what
        is left of the position. A bracket entry counts too: one that shrinks or flips a
        position leaves the older legs more than it holds, or on the wrong side of it."""
        coid = order.client_order_id
        book = self._book
        if coid in book.legs or not book.open_legs(order.symbol):
            return
        task = asyncio.create_task(self.follow(order.symbol), name=f"legs-{order.symbol}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def follow(self, symbol: str) -> None:
        async with self._locks.setdefault(symbol, asyncio.Lock()):
            await self._follow(symbol)

    async def _follow(self, symbol: str) -> None:
        """Shrink or cancel the open legs of ``symbol`` to what its position holds now.

        Each role's working legs together cover at most the position, the oldest first (two
        brackets' stops over a position half sold must not sell it twice); a leg on the side
        that grows the position (a long's sell stop once a sell flipped it short) is cancelled:
        it would open or grow a position instead of closing one."""
        held = self._book.position_qty(symbol)
        exit_side = None if held == ZERO else (Side.SELL if held > ZERO else Side.BUY)
        budget = {role: abs(held) for role in set(self._book.legs.values())}
        for coid in self._book.open_legs(symbol):
            tracked = self._book.orders.get(coid)
            if tracked is None or self._book.entry_filled(coid) == ZERO:
                continue
            leg = tracked.order
            role = self._book.legs[coid]
            keep = ZERO if leg.side is not exit_side else min(leg.remaining_quantity, budget[role])
            budget[role] -= keep
            try:
                if keep == ZERO:
                    await self._broker.cancel(coid)
                    log.info("position %s is %s: leg %s cancelled", symbol, held, coid)
                elif leg.remaining_quantity > keep:
                    change = OrderChange(quantity=leg.filled_quantity + keep)
                    self._apply_order(await self._broker.replace(coid, change))
                    log.info("position %s is %s: leg %s follows (%s)", symbol, held, coid, keep)
            except BrokerError as exc:
                if isinstance(exc, OrderRejected) and exc.code in NOT_OPEN:
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

    def sweep(self) -> None:
        """Follow again the symbols whose working legs cover more than their position or lie
        on the wrong side of it (a follow the broker refused, or that failed on the wire): a
        stop left over a closed position would open one. Called at every risk sweep."""
        book = self._book
        for symbol in book.leg_symbols():
            held = book.position_qty(symbol)
            cover: dict[tuple[str, object], Decimal] = {}
            for coid in self._book.open_legs(symbol):
                if book.entry_filled(coid) == ZERO:
                    continue
                leg = book.orders[coid].order
                key = (book.legs[coid], leg.side)
                cover[key] = cover.get(key, ZERO) + leg.remaining_quantity
            exit_side = Side.SELL if held > ZERO else Side.BUY
            if any(
                held == ZERO or side is not exit_side or qty > abs(held)
                for (_, side), qty in cover.items()
            ):
                task = asyncio.create_task(self.follow(symbol), name=f"legs-{symbol}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the legs being adjusted (a flatten waits before it closes a position)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
