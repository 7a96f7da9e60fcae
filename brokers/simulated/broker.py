"""The simulated paper broker: the embedded default and the venue for fire drills.

A deterministic market (no randomness anywhere): quotes come from the constructor or from
``set_quote`` and every quoted symbol is republished every ``tick_s`` with a fresh timestamp
(subscribing only adds symbols, it never silences the others), except a quote set with an
explicit ``ts``, which keeps it (so a test can make a symbol stale). Market orders fill at once
at the ask (buy) or bid (sell); limit orders rest until the market crosses them and then fill at
the limit or better; stop and stop_limit orders rest until the market reaches their stop (see
``market.py``). With ``fill_quantity_per_tick`` an order fills at most that much per quote or
tick and rests ``partially_filled`` meanwhile (see ``desk.py``: fills, replace, refusal codes).
Equity = cash + positions marked at mid. Buying power = equity x ``margin_multiplier`` - gross
position value - open buy orders (at their limit; a market order at the ask, a stop at
max(stop, ask)).

Brackets (``submit_bracket``, ``adopt_bracket``, as the Alpaca and IB adapters have them): an
entry with a stop loss and/or a take profit held until it fills, see ``brackets.py``.

Beyond the broker protocol, one simulator-only call: ``await link_oco(client_order_ids)`` puts
open orders of one symbol in a one-cancels-other group (returns its id, ``oco-<broker id>``):
when one member fills, even partly, the others are reduced to what it has left to fill, and
cancelled when that is nothing (an OrderEvent each, reason ``oco: ...``). ``oco_group(id)``
lists a group's members. Groups live in the state file with the orders.

The account (cash, positions, every order, the id counter, the submit counts) lives in the
SQLite file ``state_path`` when one is given (see ``state.py``): the broker kept running while
the gateway restarted. Each change is committed before the call that made it returns; without a
``state_path`` everything stays in memory.

Fire drills (``faults``, see ``faults.py``) change only what the broker does, never how it
reports it: a lost answer is a ``BrokerUnavailable`` like any dropped connection. A call made
while the broker is not connected raises ``NotSent`` (the request never left).
``fail_cancels`` lets a drill make the broker refuse some cancels, to exercise the kill switch's
retry-and-report path. The latency drill delays replace and link_oco like every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from brokers.base import (
    Account,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    ConnectionEvent,
    Fill,
    OrderChange,
    OrderRequest,
    OrderStatus,
    Position,
    Quote,
    QuoteEvent,
    to_decimal,
    utcnow,
)
from brokers.errors import BrokerError, BrokerUnavailable, NotSent, OrderRejected
from brokers.simulated import brackets
from brokers.simulated.desk import OrderDesk
from brokers.simulated.executions import MemoryExecutions
from brokers.simulated.faults import Faults, FaultState
from brokers.simulated.ledger import ZERO, Ledger
from brokers.simulated.market import SimQuote
from brokers.simulated.state import StateFile
from brokers.simulated.state_writes import CallWrites

log = logging.getLogger("brokers.simulated")
_Placed = TypeVar("_Placed")


class SimulatedBroker:
    name = "simulated"

    def __init__(
        self,
        initial_cash: float | Decimal | int = 100000,
        quotes: Mapping[str, tuple[Any, Any]] | None = None,
        *,
        tick_s: float = 1.0,
        margin_multiplier: float | Decimal | int = 1,
        clock: Callable[[], datetime] = utcnow,
        state_path: Path | None = None,
        faults: Faults | None = None,
        fill_quantity_per_tick: float | Decimal | int | None = None,
    ):
        """``state_path``: the SQLite file holding the account (created with ``initial_cash``
        when missing; ``BrokerError(code="bad_state")`` when unreadable); None keeps it in
        memory. ``faults``: the fire drills in force from the start.
        ``fill_quantity_per_tick``: the most an order fills per quote or tick (None: all)."""
        self._clock = clock
        self._tick_s = tick_s
        self._margin = to_decimal(margin_multiplier)
        self._quotes: dict[str, SimQuote] = {}
        self._events: asyncio.Queue[BrokerEvent] = asyncio.Queue()
        self._subscribed: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._connected = False
        self._faults = FaultState(clock, faults)
        self.fail_cancels: dict[str, str] = {}  # broker_order_id -> reason, for drills
        now = clock()
        for symbol, (bid, ask) in (quotes or {}).items():
            self._quotes[symbol] = SimQuote(to_decimal(bid), to_decimal(ask), now, False)
        self._per_tick = _per_tick(fill_quantity_per_tick)
        cash = to_decimal(initial_cash)
        self._state = None if state_path is None else StateFile(state_path, initial_cash=cash)
        self._memory_fills = MemoryExecutions()  # without a state file: the executions here
        self._desk = self._new_desk(
            Ledger(cash) if self._state is None else Ledger.restore(self._state.load())
        )
        self._writes = CallWrites(self._state, lambda: self._ledger, self._memory_fills)

    def _new_desk(self, ledger: Ledger) -> OrderDesk:
        return OrderDesk(
            ledger,
            self._quotes,
            publish=self._publish,
            clock=self._clock,
            margin=self._margin,
            fill_quantity_per_tick=self._per_tick,
        )

    @property
    def _ledger(self) -> Ledger:
        return self._desk.ledger

    @property
    def state_path(self) -> Path | None:
        return None if self._state is None else self._state.path

    @property
    def submit_counts(self) -> Mapping[str, int]:
        """How often each client_order_id reached submit(): a drill checks nobody sent one twice."""
        return self._ledger.submit_counts

    # --- fire drills -------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force; ``fail_lookups_s`` is the time still left."""
        return self._faults.current()

    def set_faults(self, faults: Faults) -> Faults:
        """Replace every fault in force with ``faults`` (``Faults()`` clears them all)."""
        return self._faults.replace(faults)

    async def _reach(self) -> None:
        """The request leaves for the broker and, after the drill's latency, takes effect."""
        if not self._connected:
            raise NotSent("simulated broker is not connected")
        await self._faults.delay()
        if not self._connected:
            raise BrokerUnavailable("simulated broker: connection closed before the answer")

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if self._state is not None:
            # The file is the account: read it again (it may have moved on since construction,
            # as when the other member of a standby pair traded on it meanwhile).
            self._state.open()
            self._desk = self._new_desk(Ledger.restore(self._state.load()))
        self._connected = True
        self._publish(ConnectionEvent(connected=True))
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="simulated-broker-ticker")

    async def close(self) -> None:
        self._connected = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._state is not None:
            self._state.close()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            now = self._clock()
            for symbol, quote in list(self._quotes.items()):
                if not quote.pinned:
                    quote.ts = now
                    self._publish_quote(symbol)
                if self._per_tick is not None:
                    self._match_on_tick(symbol)

    def _match_on_tick(self, symbol: str) -> None:
        """Partial fills go on at each tick while the market still crosses the order."""
        try:
            with self._writes.changing():
                self._desk.match(symbol)
        except BrokerError as exc:  # a failed write: said, not lost; the next tick goes on
            log.error("simulated broker: matching %s on a tick failed: %s", symbol, exc)

    def _require_connected(self) -> None:
        if not self._connected:
            raise NotSent("simulated broker is not connected")

    # --- market ------------------------------------------------------------------------------

    def set_quote(
        self, symbol: str, bid: Any, ask: Any, ts: datetime | None = None
    ) -> tuple[Quote, list[BrokerOrder]]:
        """Move the market; resting orders the new quote crosses fill at once. Returned: the
        orders the move changed (fills, and one-cancels-other members it reduced or cancelled),
        at their latest state."""
        quote = SimQuote(to_decimal(bid), to_decimal(ask), ts or self._clock(), ts is not None)
        self._quotes[symbol] = quote
        published = self._publish_quote(symbol)
        with self._writes.changing():
            return published, self._desk.match(symbol)

    def _quote(self, symbol: str) -> Quote | None:
        q = self._quotes.get(symbol)
        return None if q is None else q.as_quote(symbol)

    def _publish_quote(self, symbol: str) -> Quote:
        quote = self._quote(symbol)
        assert quote is not None
        # Every quoted symbol, subscribed or not: a subscription never silences another symbol.
        self._publish(QuoteEvent(quote=quote))
        return quote

    def _publish(self, event: BrokerEvent) -> None:
        self._events.put_nowait(event)

    async def quote(self, symbol: str) -> Quote:
        self._require_connected()
        quote = self._quote(symbol)
        if quote is None:
            raise OrderRejected(f"no market for {symbol}", code="unknown_symbol")
        return quote

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        """Adds symbols (this market streams every symbol it quotes anyway); never removes."""
        self._subscribed.update(symbols)

    async def events(self) -> AsyncIterator[BrokerEvent]:  # type: ignore[override]
        while True:
            yield await self._events.get()

    # --- account -----------------------------------------------------------------------------

    async def account(self) -> Account:
        self._require_connected()
        return Account(
            equity=self._desk.equity(),
            cash=self._ledger.cash,
            buying_power=self._desk.buying_power(),
            day_start_equity=None,
        )

    async def positions(self) -> list[Position]:
        self._require_connected()
        return [
            Position(
                symbol=s,
                qty=p.qty,
                avg_price=p.avg_price,
                market_price=self._desk.mark(s, p.avg_price),
            )
            for s, p in sorted(self._ledger.positions.items())
            if p.qty != ZERO
        ]

    # --- orders ------------------------------------------------------------------------------

    async def open_orders(self) -> list[BrokerOrder]:
        await self._reach()
        self._check_lookups()
        return list(self._ledger.open.values())

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        await self._reach()
        self._check_lookups()
        return self._ledger.orders.get(client_order_id)

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        """Every fill these orders had, as their events carried them (same fill ids), oldest
        first: what a gateway that lost events asks for again (see ``executions.py``)."""
        await self._reach()
        self._check_lookups()
        if self._state is None:
            return self._memory_fills.read(client_order_ids)
        return self._state.executions(client_order_ids)

    def _check_lookups(self) -> None:
        if self._faults.lookups_failing:
            raise BrokerUnavailable("simulated broker: order look-up timed out")

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        await self._reach()
        return await self._writes.committed(
            lambda grouped: self._drilled(
                [order.client_order_id], lambda: self._desk.place(order), grouped
            )
        )

    async def submit_bracket(
        self,
        entry: OrderRequest,
        stop_loss: OrderRequest | None,
        take_profit: OrderRequest | None,
    ) -> list[BrokerOrder]:
        """The entry and its exits as one unit (see ``brackets.py``): [entry, stop_loss?,
        take_profit?], each under its request's client_order_id. Idempotent on the ids; the
        drills treat it as one submit."""
        await self._reach()
        ids = [o.client_order_id for o in (entry, stop_loss, take_profit) if o is not None]
        return await self._writes.committed(
            lambda grouped: self._drilled(
                ids, lambda: brackets.place(self._desk, entry, stop_loss, take_profit), grouped
            )
        )

    def _drilled(
        self,
        ids: list[str],
        place: Callable[[], _Placed],
        grouped: list[asyncio.Future[None]] | None = None,
    ) -> _Placed:
        """One submit (of one order or a bracket) as the drills have it: counted, maybe
        refused, maybe placed with its answer lost."""
        lost = False
        with self._writes.changing(grouped):
            for coid in ids:
                self._ledger.count_submit(coid)
            if self._faults.take_reject():
                raise OrderRejected("order rejected by the broker", code="drill_reject")
            lost = self._faults.take_lost_answer()
            try:
                placed = place()
            except OrderRejected:
                if not lost:
                    raise
        if lost:
            # It reached the market; only the answer is lost, as with a dropped connection.
            raise BrokerUnavailable("simulated broker: connection lost before the answer arrived")
        return placed

    async def adopt_bracket(
        self, entry_id: str, stop_loss_id: str | None, take_profit_id: str | None
    ) -> list[BrokerOrder]:
        """After a restart: the bracket read back by its ids, as ``submit_bracket`` answered."""
        await self._reach()
        self._check_lookups()
        return brackets.adopt(self._desk, entry_id, stop_loss_id, take_profit_id)

    async def cancel(self, client_order_id: str) -> None:
        """Cancel an open order now (what filled stays filled); OrderNotFound for an unknown
        id, OrderRejected(order_not_open) for a final order."""
        await self._reach()
        order = self._desk.find_open(client_order_id)
        reason = self.fail_cancels.get(order.broker_order_id)
        if reason is not None:
            raise OrderRejected(reason, code="cancel_refused")
        with self._writes.changing():
            self._desk.set_status(order, OrderStatus.CANCELED, "canceled by request")

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        """Change a resting order in place (see ``desk.py``); a refusal changes nothing."""
        await self._reach()
        with self._writes.changing():
            return self._desk.replace(client_order_id, change)

    async def link_oco(self, client_order_ids: Sequence[str]) -> str:
        """Link open orders of one symbol one-cancels-other; the group's id is returned."""
        await self._reach()
        with self._writes.changing():
            return self._desk.link_oco(client_order_ids)

    def oco_group(self, client_order_id: str) -> list[str]:
        """The members of the order's one-cancels-other group, itself included ([]: none)."""
        return self._desk.oco_group(client_order_id)

    async def cancel_all(self) -> CancelReport:
        await self._reach()
        cancelled: list[str] = []
        failed: dict[str, str] = {}
        with self._writes.changing():
            for coid in list(self._ledger.open):
                order = self._ledger.orders[coid]
                if not order.is_open:  # a held leg its entry's cancel ended: cancelled too
                    cancelled.append(order.broker_order_id)
                    continue
                reason = self.fail_cancels.get(order.broker_order_id)
                if reason is not None:
                    failed[order.broker_order_id] = reason
                    continue
                self._desk.set_status(order, OrderStatus.CANCELED, "canceled by cancel_all")
                cancelled.append(order.broker_order_id)
        return CancelReport(cancelled=cancelled, failed=failed)


def _per_tick(value: float | Decimal | int | None) -> Decimal | None:
    if value is None:
        return None
    try:
        per_tick = to_decimal(value)
    except ValueError as exc:
        raise ValueError(f"fill_quantity_per_tick: {exc}") from exc
    if per_tick <= ZERO:
        raise ValueError(f"fill_quantity_per_tick: must be greater than 0, not {value}")
    return per_tick
