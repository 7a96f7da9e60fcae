"""The simulated paper broker: the embedded default and the venue for fire drills.

A deterministic market (no randomness anywhere): quotes come from the constructor or from
``set_quote`` and every quoted symbol is republished every ``tick_s`` with a fresh timestamp
(subscribing only adds symbols, it never silences the others), except a quote set with an
explicit ``ts``, which keeps it (so a test can make a symbol stale). Market orders fill at once
at the ask (buy) or bid (sell); limit orders rest until the market crosses them and then fill at
the limit or better. Equity = cash + positions marked at mid. Buying power = equity x
``margin_multiplier`` - gross position value - open buy orders.

The account (cash, positions, every order, the id counter, the submit counts) lives in the
SQLite file ``state_path`` when one is given (see ``state.py``): the broker kept running while
the gateway restarted. Each change is committed before the call that made it returns; without a
``state_path`` everything stays in memory.

Fire drills (``faults``, see ``faults.py``) change only what the broker does, never how it
reports it: a lost answer is a ``BrokerUnavailable`` like any dropped connection. A call made
while the broker is not connected raises ``NotSent`` (the request never left).
``fail_cancels`` lets a drill make the broker refuse some cancels, to exercise the kill switch's
retry-and-report path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokers.base import (
    Account,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    ConnectionEvent,
    Fill,
    OrderChange,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    QuoteEvent,
    Side,
    TimeInForce,
    assemble,
    to_decimal,
    utcnow,
)
from brokers.errors import BrokerUnavailable, NotSent, OrderNotFound, OrderRejected
from brokers.simulated.faults import Faults, FaultState
from brokers.simulated.ledger import ZERO, Ledger
from brokers.simulated.market import SimQuote, crossing_price
from brokers.simulated.state import StateFile


def _with(order: BrokerOrder, **changes: Any) -> BrokerOrder:
    """``order`` with some fields changed (the simulator's own, valid values)."""
    return assemble(BrokerOrder, {**order.__dict__, **changes})


def _order_event(
    order: BrokerOrder, fill: Fill | None = None, reason: str | None = None
) -> OrderEvent:
    return assemble(OrderEvent, {"kind": "order", "order": order, "fill": fill, "reason": reason})


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
    ):
        """``state_path``: the SQLite file holding the account (created with ``initial_cash``
        when missing; ``BrokerError(code="bad_state")`` when unreadable); None keeps it in
        memory. ``faults``: the fire drills in force from the start."""
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
        cash = to_decimal(initial_cash)
        self._state = None if state_path is None else StateFile(state_path, initial_cash=cash)
        self._ledger = Ledger(cash) if self._state is None else Ledger.restore(self._state.load())

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

    # --- persistence -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Whatever the block changes is committed (one transaction) before the call returns."""
        try:
            yield
        finally:
            if self._state is not None:
                changes = self._ledger.pending()
                if changes:
                    self._state.write(changes)
            self._ledger.settle()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if self._state is not None:
            # The file is the account: read it again (it may have moved on since construction,
            # as when the other member of a standby pair traded on it meanwhile).
            self._state.open()
            self._ledger = Ledger.restore(self._state.load())
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
            for symbol, quote in self._quotes.items():
                if not quote.pinned:
                    quote.ts = now
                    self._publish_quote(symbol)

    def _require_connected(self) -> None:
        if not self._connected:
            raise NotSent("simulated broker is not connected")

    # --- market ------------------------------------------------------------------------------

    def set_quote(
        self, symbol: str, bid: Any, ask: Any, ts: datetime | None = None
    ) -> tuple[Quote, list[BrokerOrder]]:
        """Move the market; resting limit orders the new quote crosses fill at once (returned)."""
        quote = SimQuote(to_decimal(bid), to_decimal(ask), ts or self._clock(), ts is not None)
        self._quotes[symbol] = quote
        published = self._publish_quote(symbol)
        with self._changing():
            return published, self._match_resting(symbol)

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

    def _mark(self, symbol: str, fallback: Decimal) -> Decimal:
        q = self._quotes.get(symbol)
        return q.mid if q is not None else fallback

    def _equity(self) -> Decimal:
        return self._ledger.equity(self._mark)

    def _buying_power(self) -> Decimal:
        return self._ledger.buying_power(self._mark, self._margin)

    async def account(self) -> Account:
        self._require_connected()
        return Account(
            equity=self._equity(),
            cash=self._ledger.cash,
            buying_power=self._buying_power(),
            day_start_equity=None,
        )

    async def positions(self) -> list[Position]:
        self._require_connected()
        return [
            Position(
                symbol=s, qty=p.qty, avg_price=p.avg_price, market_price=self._mark(s, p.avg_price)
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

    def _check_lookups(self) -> None:
        if self._faults.lookups_failing:
            raise BrokerUnavailable("simulated broker: order look-up timed out")

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        await self._reach()
        lost = False
        with self._changing():
            self._ledger.count_submit(order.client_order_id)
            if self._faults.take_reject():
                raise OrderRejected("order rejected by the broker", code="drill_reject")
            lost = self._faults.take_lost_answer()
            try:
                placed = self._place(order)
            except OrderRejected:
                if not lost:
                    raise
        if lost:
            # It reached the market; only the answer is lost, as with a dropped connection.
            raise BrokerUnavailable("simulated broker: connection lost before the answer arrived")
        return placed

    def _place(self, order: OrderRequest) -> BrokerOrder:
        existing = self._ledger.orders.get(order.client_order_id)
        if existing is not None:
            return existing  # idempotent: the same client_order_id never makes a second order
        quote = self._quotes.get(order.symbol)
        if quote is None:
            raise OrderRejected(f"no market for {order.symbol}", code="unknown_symbol")
        price_for_bp = order.limit_price if order.order_type is OrderType.LIMIT else quote.ask
        assert price_for_bp is not None
        if order.side is Side.BUY and order.quantity * price_for_bp > self._buying_power():
            raise OrderRejected("insufficient buying power", code="buying_power")
        # Every value comes from the validated request: no second validation.
        placed = assemble(
            BrokerOrder,
            {
                "client_order_id": order.client_order_id,
                "broker_order_id": self._ledger.new_broker_order_id(),
                "symbol": order.symbol,
                "side": order.side,
                "quantity": order.quantity,
                "filled_quantity": ZERO,
                "status": OrderStatus.ACCEPTED,
                "limit_price": order.limit_price,
                "avg_fill_price": None,
                "order_type": order.order_type,
                "time_in_force": order.time_in_force,
                "stop_price": order.stop_price,
            },
        )
        self._ledger.store(placed)
        fill_price = crossing_price(placed, quote)
        if fill_price is not None:
            return self._fill(placed, fill_price)
        if order.time_in_force is TimeInForce.IOC:
            return self._set_status(placed, OrderStatus.CANCELED, "ioc not marketable")
        self._publish(_order_event(placed))
        return placed

    def _fill(self, order: BrokerOrder, price: Decimal) -> BrokerOrder:
        qty = order.remaining_quantity
        self._ledger.book_fill(order.symbol, order.side, qty, price)
        filled = _with(
            order,
            filled_quantity=order.quantity,
            avg_fill_price=price,
            status=OrderStatus.FILLED,
        )
        self._ledger.store(filled)
        fill_fields = {
            "client_order_id": order.client_order_id,
            "broker_order_id": order.broker_order_id,
            "symbol": order.symbol,
            "side": order.side,
            "quantity": qty,
            "price": price,
            "ts": self._clock(),
            "fill_id": f"{order.broker_order_id}-1",
        }
        # A fill of a price or quantity that is not positive is refused by the model, as ever.
        fill = assemble(Fill, fill_fields) if price > ZERO and qty > ZERO else Fill(**fill_fields)
        self._publish(_order_event(filled, fill))
        return filled

    def _match_resting(self, symbol: str) -> list[BrokerOrder]:
        quote = self._quotes[symbol]
        filled = []
        for order in list(self._ledger.open.values()):
            if order.symbol == symbol:
                price = crossing_price(order, quote)
                if price is not None:
                    filled.append(self._fill(order, price))
        return filled

    def _set_status(self, order: BrokerOrder, status: OrderStatus, reason: str) -> BrokerOrder:
        updated = _with(order, status=status)
        self._ledger.store(updated)
        self._publish(_order_event(updated, reason=reason))
        return updated

    async def cancel(self, client_order_id: str) -> None:
        await self._reach()
        order = self._ledger.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if not order.is_open:
            raise OrderRejected(f"order {client_order_id} is {order.status.value}", code="not_open")
        reason = self.fail_cancels.get(order.broker_order_id)
        if reason is not None:
            raise OrderRejected(reason, code="cancel_refused")
        with self._changing():
            self._set_status(order, OrderStatus.CANCELED, "canceled by request")

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        raise NotImplementedError("replace: being built")  # TODO(issue 15)

    async def cancel_all(self) -> CancelReport:
        await self._reach()
        cancelled: list[str] = []
        failed: dict[str, str] = {}
        with self._changing():
            for order in list(self._ledger.open.values()):
                reason = self.fail_cancels.get(order.broker_order_id)
                if reason is not None:
                    failed[order.broker_order_id] = reason
                    continue
                self._set_status(order, OrderStatus.CANCELED, "canceled by cancel_all")
                cancelled.append(order.broker_order_id)
        return CancelReport(cancelled=cancelled, failed=failed)
