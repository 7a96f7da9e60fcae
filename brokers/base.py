"""The broker protocol and the types the gateway and every adapter share.

Numbers: every quantity, price and amount of money is a ``decimal.Decimal`` (exact, so limits
hold at their boundaries without float surprises). Constructors take plain values (``1``,
``150.0``, ``"150.25"``) and normalise them; JSON output writes them as numbers, never strings.
Ids (``client_order_id``, ``broker_order_id``) are strings everywhere.

Validation happens here, at the edge: a NaN, an infinity, a negative or zero quantity, or a
limit price on a market order is refused with an error naming the field.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)


def _to_decimal(value: Any) -> Any:
    """Accept int, float, str and Decimal; refuse NaN and infinities before Decimal sees them."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        # repr() keeps the shortest exact text of the float (150.1 stays 150.1, not 150.09999...)
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except Exception as exc:  # decimal.InvalidOperation
            raise ValueError(f"not a number: {value!r}") from exc
        return parsed
    return value


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


_as_json_number = PlainSerializer(float, return_type=float, when_used="json")

Num = Annotated[Decimal, BeforeValidator(_to_decimal), AfterValidator(_finite), _as_json_number]
"""A finite Decimal of any sign (signed position quantity, P&L)."""
PositiveNum = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    AfterValidator(_finite),
    AfterValidator(_positive),
    _as_json_number,
]
NonNegativeNum = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    AfterValidator(_finite),
    AfterValidator(_non_negative),
    _as_json_number,
]


def to_decimal(value: Any) -> Decimal:
    """Normalise a plain number the way the models do (for callers outside a model)."""
    result = _to_decimal(value)
    if not isinstance(result, Decimal):
        raise ValueError(f"not a number: {value!r}")
    return _finite(result)


# Set by a caller that can let its answer wait a loop turn (the gateway's signal pipeline,
# whose concurrent signals reach the broker in the same turn): an adapter that keeps its own
# state on disk may then share one commit among that turn's calls (group commit), still
# committing before it answers. Unset, it commits at once: a caller that does not expect the
# loop to turn (a test driving the broker by hand) sees no other task run meanwhile.
SHARED_COMMIT: ContextVar[bool] = ContextVar("shared_commit", default=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


_M = TypeVar("_M", bound=BaseModel)
_set_attr = object.__setattr__


def assemble(model: type[_M], fields: dict[str, Any]) -> _M:
    """Build ``model`` from values that are valid already (taken from validated models, or
    computed from them in trusted code), without validating them a second time.

    ``fields`` names every field of the model. This is pydantic's ``model_construct`` without
    its per-field bookkeeping (about 4x cheaper); never use it for data from outside: a client's
    body or a broker's raw answer is validated by the model's constructor.
    """
    assert len(fields) == len(model.__pydantic_fields__), f"{model.__name__}: every field"
    obj = model.__new__(model)
    _set_attr(obj, "__dict__", fields)
    _set_attr(obj, "__pydantic_fields_set__", set(fields))
    _set_attr(obj, "__pydantic_extra__", None)
    _set_attr(obj, "__pydantic_private__", None)
    return obj


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    @property
    def has_limit(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def has_stop(self) -> bool:
        return self in (OrderType.STOP, OrderType.STOP_LIMIT)


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING_CANCEL = "pending_cancel"

    @property
    def is_open(self) -> bool:
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset(
    {
        OrderStatus.NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)


def check_limit_price(
    order_type: OrderType, limit_price: Decimal | None, stop_price: Decimal | None = None
) -> None:
    """limit_price exactly on limit and stop_limit orders, stop_price exactly on stop and
    stop_limit orders."""
    if order_type.has_limit and limit_price is None:
        raise ValueError(f"limit_price: required for a {order_type.value} order")
    if not order_type.has_limit and limit_price is not None:
        raise ValueError(f"limit_price: not allowed on a {order_type.value} order")
    if order_type.has_stop and stop_price is None:
        raise ValueError(f"stop_price: required for a {order_type.value} order")
    if not order_type.has_stop and stop_price is not None:
        raise ValueError(f"stop_price: not allowed on a {order_type.value} order")


def position_after_fill(
    qty: Decimal, avg_price: Decimal, side: Side, fill_qty: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """A position's signed quantity and average price after a fill (brokers' convention: the
    average moves when opening or adding, stays when reducing, resets when flipping)."""
    signed = fill_qty if side is Side.BUY else -fill_qty
    new_qty = qty + signed
    if qty == 0 or (qty > 0) == (signed > 0):
        return new_qty, (abs(qty) * avg_price + fill_qty * price) / abs(new_qty)
    if new_qty != 0 and (new_qty > 0) != (qty > 0):
        return new_qty, price  # flipped through zero: what remains was opened at this price
    return new_qty, avg_price


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class OrderRequest(_Frozen):
    """What the gateway asks a broker to do. ``client_order_id`` is the idempotency key."""

    client_order_id: str = Field(min_length=1, max_length=128)
    symbol: str = Field(min_length=1, max_length=16)
    side: Side
    quantity: PositiveNum
    order_type: OrderType = OrderType.MARKET
    limit_price: PositiveNum | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    stop_price: PositiveNum | None = None

    @model_validator(mode="after")
    def _limit_price_matches_type(self) -> OrderRequest:
        check_limit_price(self.order_type, self.limit_price, self.stop_price)
        return self


class OrderChange(_Frozen):
    """What a replace changes on a resting order; a field left None keeps its value. The
    order keeps its client_order_id (the broker may give it a new broker_order_id)."""

    quantity: PositiveNum | None = None
    limit_price: PositiveNum | None = None
    stop_price: PositiveNum | None = None

    @model_validator(mode="after")
    def _something(self) -> OrderChange:
        if self.quantity is None and self.limit_price is None and self.stop_price is None:
            raise ValueError("quantity, limit_price or stop_price: nothing to change")
        return self


class BrokerOrder(_Frozen):
    """An order as the broker knows it."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: PositiveNum
    filled_quantity: NonNegativeNum = Decimal(0)
    status: OrderStatus
    limit_price: PositiveNum | None = None
    avg_fill_price: PositiveNum | None = None
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    stop_price: PositiveNum | None = None

    @property
    def remaining_quantity(self) -> Decimal:
        return max(self.quantity - self.filled_quantity, Decimal(0))

    @property
    def is_open(self) -> bool:
        return self.status.is_open


class Quote(_Frozen):
    """The latest bid/ask with the exchange timestamp (timezone-aware, UTC)."""

    symbol: str
    bid: Num
    ask: Num
    ts: datetime

    @model_validator(mode="after")
    def _aware(self) -> Quote:
        if self.ts.tzinfo is None:
            raise ValueError("ts: must carry a timezone")
        return self


class Position(_Frozen):
    symbol: str
    qty: Num
    avg_price: NonNegativeNum
    market_price: NonNegativeNum | None = None


class Account(_Frozen):
    equity: Num
    cash: Num
    buying_power: Num
    day_start_equity: Num | None = None


class CancelReport(_Frozen):
    """Outcome of ``cancel_all``: broker order ids cancelled, and the ones that were not."""

    cancelled: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class Fill(_Frozen):
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: PositiveNum
    price: PositiveNum
    ts: datetime
    fill_id: str = ""


class OrderEvent(_Frozen):
    """An order update pushed by the broker: a new state, with the fill that caused it if any."""

    kind: Literal["order"] = "order"
    order: BrokerOrder
    fill: Fill | None = None
    reason: str | None = None


class QuoteEvent(_Frozen):
    kind: Literal["quote"] = "quote"
    quote: Quote


class ConnectionEvent(_Frozen):
    """The adapter lost or regained its broker link; on ``connected=False`` quotes go stale."""

    kind: Literal["connection"] = "connection"
    connected: bool
    reason: str = ""


BrokerEvent = OrderEvent | QuoteEvent | ConnectionEvent


@runtime_checkable
class Broker(Protocol):
    """The one interface the gateway reaches a broker through.

    ``submit`` is idempotent on ``order.client_order_id``. ``events()`` yields order updates,
    quotes for subscribed symbols and connection changes until ``close()``; after a reconnect
    it also yields the fills that happened while the link was down (each fill carries the
    broker's own ``fill_id``, so a fill seen twice is recognised).

    ``cancel`` asks the broker to cancel; it returns once the broker took the request (the
    order may still fill: its events say what happened). ``replace`` changes a resting order's
    quantity or prices in place: afterwards the broker holds one live order for the
    client_order_id, with the returned state; a refusal (BrokerRejected) leaves the original
    order as it was.
    """

    name: str

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def open_orders(self) -> list[BrokerOrder]: ...

    async def get_order(self, client_order_id: str) -> BrokerOrder | None: ...

    async def submit(self, order: OrderRequest) -> BrokerOrder: ...

    async def cancel(self, client_order_id: str) -> None: ...

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder: ...

    async def cancel_all(self) -> CancelReport: ...

    async def quote(self, symbol: str) -> Quote: ...

    def subscribe_quotes(self, symbols: Iterable[str]) -> None: ...

    def events(self) -> AsyncIterator[BrokerEvent]: ...


@runtime_checkable
class ExecutionSource(Protocol):
    """Optional, beside ``Broker`` (like ``submit_bracket``): an adapter that can say again
    which fills an order had. ``executions`` answers the fills of these orders that the broker
    still knows, oldest first, each with the broker's own ``fill_id`` (the same id its event
    carried, so a fill recorded already is recognised); an order it cannot tell about is
    simply absent. A gateway that lost fill events (killed before they were journaled, down
    while an order filled) asks for them at start; an adapter without it leaves the gap
    reported, never filled with made-up fills."""

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]: ...
