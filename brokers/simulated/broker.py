"""The simulated paper broker: the embedded default and the venue for staging drills.

A deterministic market (no randomness anywhere): quotes come from the constructor or from
``set_quote`` and are republished every ``tick_s`` with fresh timestamps, except a quote set with
an explicit ``ts``, which keeps it (so a test can make a symbol stale). Market orders fill at once
at the ask (buy) or bid (sell); limit orders rest until the market crosses them and then fill at
the limit or better. Equity = cash + positions marked at mid. Buying power = equity x
``margin_multiplier`` - gross position value - open buy orders.

``fail_cancels`` lets a drill make the broker refuse some cancels, to exercise the kill switch's
retry-and-report path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
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
    position_after_fill,
    to_decimal,
    utcnow,
)
from brokers.errors import BrokerUnavailable, OrderNotFound, OrderRejected
from brokers.simulated.state import load_state, save_state

ZERO = Decimal(0)


@dataclass(slots=True)
class _SimPosition:
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO


@dataclass(slots=True)
class _SimQuote:
    bid: Decimal
    ask: Decimal
    ts: datetime
    pinned: bool  # set with an explicit ts: the ticker leaves its timestamp alone


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
    ):
        self._clock = clock
        self._tick_s = tick_s
        self._margin = to_decimal(margin_multiplier)
        self._cash = to_decimal(initial_cash)
        self._quotes: dict[str, _SimQuote] = {}
        self._positions: dict[str, _SimPosition] = {}
        self._orders: dict[str, BrokerOrder] = {}  # by client_order_id, every order ever
        self._open: dict[str, BrokerOrder] = {}  # the resting ones, so matching stays O(open)
        self._by_broker_id: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[BrokerEvent] = asyncio.Queue()
        self._subscribed: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._connected = False
        self.fail_cancels: dict[str, str] = {}  # broker_order_id -> reason, for drills
        # How often each client_order_id reached submit(): a drill checks nobody sent one twice.
        self.submit_counts: dict[str, int] = {}
        now = clock()
        for symbol, (bid, ask) in (quotes or {}).items():
            self._quotes[symbol] = _SimQuote(to_decimal(bid), to_decimal(ask), now, False)
        self._state_path: Path | None = None
        if state_path is not None:
            self._restore(state_path)
            self._state_path = state_path

    # --- persistence (only with a state_path) ------------------------------------------------

    def _restore(self, path: Path) -> None:
        state = load_state(path)
        if state is None:
            return
        self._cash = Decimal(state["cash"])
        self._ids = itertools.count(int(state["next_id"]))
        self._positions = {
            s: _SimPosition(Decimal(q), Decimal(p)) for s, (q, p) in state["positions"].items()
        }
        for raw in state["orders"]:
            self._store(BrokerOrder.model_validate(raw))
        self._by_broker_id = {o.broker_order_id: c for c, o in self._orders.items()}
        self.submit_counts = {k: int(v) for k, v in state["submit_counts"].items()}

    def _save(self) -> None:
        if self._state_path is None:
            return
        next_id = next(self._ids)
        self._ids = itertools.count(next_id)
        save_state(
            self._state_path,
            {
                "cash": str(self._cash),
                "next_id": next_id,
                "positions": {
                    s: [str(p.qty), str(p.avg_price)] for s, p in self._positions.items()
                },
                "orders": [o.model_dump(mode="json") for o in self._orders.values()],
                "submit_counts": self.submit_counts,
            },
        )

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
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
            raise BrokerUnavailable("simulated broker is not connected")

    # --- market ------------------------------------------------------------------------------

    def set_quote(
        self, symbol: str, bid: Any, ask: Any, ts: datetime | None = None
    ) -> tuple[Quote, list[BrokerOrder]]:
        """Move the market; resting limit orders the new quote crosses fill at once (returned)."""
        quote = _SimQuote(to_decimal(bid), to_decimal(ask), ts or self._clock(), ts is not None)
        self._quotes[symbol] = quote
        published = self._publish_quote(symbol)
        return published, self._match_resting(symbol)

    def _quote(self, symbol: str) -> Quote | None:
        q = self._quotes.get(symbol)
        return None if q is None else Quote(symbol=symbol, bid=q.bid, ask=q.ask, ts=q.ts)

    def _publish_quote(self, symbol: str) -> Quote:
        quote = self._quote(symbol)
        assert quote is not None
        if not self._subscribed or symbol in self._subscribed:
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
        self._subscribed.update(symbols)

    async def events(self) -> AsyncIterator[BrokerEvent]:  # type: ignore[override]
        while True:
            yield await self._events.get()

    # --- account -----------------------------------------------------------------------------

    def _mark(self, symbol: str, fallback: Decimal) -> Decimal:
        q = self._quotes.get(symbol)
        return (q.bid + q.ask) / 2 if q is not None else fallback

    def _equity(self) -> Decimal:
        value = sum((p.qty * self._mark(s, p.avg_price) for s, p in self._positions.items()), ZERO)
        return self._cash + value

    def _buying_power(self) -> Decimal:
        gross = sum(
            (abs(p.qty) * self._mark(s, p.avg_price) for s, p in self._positions.items()), ZERO
        )
        open_buys = sum(
            (
                o.remaining_quantity * (o.limit_price or ZERO)
                for o in self._open.values()
                if o.side is Side.BUY
            ),
            ZERO,
        )
        return max(self._equity() * self._margin - gross - open_buys, ZERO)

    async def account(self) -> Account:
        self._require_connected()
        return Account(
            equity=self._equity(),
            cash=self._cash,
            buying_power=self._buying_power(),
            day_start_equity=None,
        )

    async def positions(self) -> list[Position]:
        self._require_connected()
        return [
            Position(
                symbol=s, qty=p.qty, avg_price=p.avg_price, market_price=self._mark(s, p.avg_price)
            )
            for s, p in sorted(self._positions.items())
            if p.qty != ZERO
        ]

    # --- orders ------------------------------------------------------------------------------

    async def open_orders(self) -> list[BrokerOrder]:
        self._require_connected()
        return list(self._open.values())

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self._require_connected()
        return self._orders.get(client_order_id)

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        self._require_connected()
        self.submit_counts[order.client_order_id] = (
            self.submit_counts.get(order.client_order_id, 0) + 1
        )
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            self._save()
            return existing  # idempotent: the same client_order_id never makes a second order
        quote = self._quotes.get(order.symbol)
        if quote is None:
            raise OrderRejected(f"no market for {order.symbol}", code="unknown_symbol")
        price_for_bp = order.limit_price if order.order_type is OrderType.LIMIT else quote.ask
        assert price_for_bp is not None
        if order.side is Side.BUY and order.quantity * price_for_bp > self._buying_power():
            raise OrderRejected("insufficient buying power", code="buying_power")
        broker_id = f"sim-{next(self._ids)}"
        # Every value comes from the validated request: no second validation.
        placed = assemble(
            BrokerOrder,
            {
                "client_order_id": order.client_order_id,
                "broker_order_id": broker_id,
                "symbol": order.symbol,
                "side": order.side,
                "quantity": order.quantity,
                "filled_quantity": ZERO,
                "status": OrderStatus.ACCEPTED,
                "limit_price": order.limit_price,
                "avg_fill_price": None,
                "order_type": order.order_type,
                "time_in_force": order.time_in_force,
            },
        )
        self._store(placed)
        self._by_broker_id[broker_id] = order.client_order_id
        fill_price = self._crossing_price(placed, quote)
        if fill_price is not None:
            return self._fill(placed, fill_price)
        if order.time_in_force is TimeInForce.IOC:
            return self._set_status(placed, OrderStatus.CANCELED, "ioc not marketable")
        self._publish(_order_event(placed))
        return placed

    def _store(self, order: BrokerOrder) -> None:
        self._orders[order.client_order_id] = order
        if order.is_open:
            self._open[order.client_order_id] = order
        else:
            self._open.pop(order.client_order_id, None)
        self._save()

    @staticmethod
    def _crossing_price(order: BrokerOrder, quote: _SimQuote) -> Decimal | None:
        if order.order_type is OrderType.MARKET:
            return quote.ask if order.side is Side.BUY else quote.bid
        limit = order.limit_price
        assert limit is not None
        if order.side is Side.BUY and quote.ask <= limit:
            return quote.ask
        if order.side is Side.SELL and quote.bid >= limit:
            return quote.bid
        return None

    def _fill(self, order: BrokerOrder, price: Decimal) -> BrokerOrder:
        qty = order.remaining_quantity
        self._cash -= (qty if order.side is Side.BUY else -qty) * price
        pos = self._positions.setdefault(order.symbol, _SimPosition())
        pos.qty, pos.avg_price = position_after_fill(pos.qty, pos.avg_price, order.side, qty, price)
        if pos.qty == ZERO:
            del self._positions[order.symbol]
        filled = _with(
            order,
            filled_quantity=order.quantity,
            avg_fill_price=price,
            status=OrderStatus.FILLED,
        )
        self._store(filled)
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
        for order in list(self._open.values()):
            if order.symbol == symbol:
                price = self._crossing_price(order, quote)
                if price is not None:
                    filled.append(self._fill(order, price))
        return filled

    def _set_status(self, order: BrokerOrder, status: OrderStatus, reason: str) -> BrokerOrder:
        updated = _with(order, status=status)
        self._store(updated)
        self._publish(_order_event(updated, reason=reason))
        return updated

    async def cancel(self, client_order_id: str) -> None:
        self._require_connected()
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if not order.is_open:
            raise OrderRejected(f"order {client_order_id} is {order.status.value}", code="not_open")
        reason = self.fail_cancels.get(order.broker_order_id)
        if reason is not None:
            raise OrderRejected(reason, code="cancel_refused")
        self._set_status(order, OrderStatus.CANCELED, "canceled by request")

    async def cancel_all(self) -> CancelReport:
        self._require_connected()
        cancelled: list[str] = []
        failed: dict[str, str] = {}
        for order in list(self._open.values()):
            reason = self.fail_cancels.get(order.broker_order_id)
            if reason is not None:
                failed[order.broker_order_id] = reason
                continue
            self._set_status(order, OrderStatus.CANCELED, "canceled by cancel_all")
            cancelled.append(order.broker_order_id)
        return CancelReport(cancelled=cancelled, failed=failed)
