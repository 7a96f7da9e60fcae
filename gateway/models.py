"""The gateway's own API models: the Signal a strategy sends and the Decision it gets back.

Everything a client sends is validated here, at the edge: numbers inside the domain the gateway
carries exactly (see "what a client may send"), texts that are not blank, times in a sane range.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from brokers.base import Num, OrderType, PositiveNum, Side, TimeInForce, check_limit_price


class ReasonCode(StrEnum):
    """Every refusal names one or more of these (see gateway/errors.py for the tree)."""

    HALTED = "halted"
    REDUCE_ONLY = "reduce_only"
    STRATEGY_SUSPENDED = "strategy_suspended"
    QUOTE_MISSING = "quote_missing"
    QUOTE_STALE = "quote_stale"
    QUOTE_INVALID = "quote_invalid"
    QUOTE_CONSERVATIVE = "quote_conservative"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_ORDER_QUANTITY = "max_order_quantity"
    POSITION_RISK = "position_risk"
    PORTFOLIO_HEAT = "portfolio_heat"
    BUYING_POWER = "buying_power"
    PRICE_COLLAR = "price_collar"
    RATE_LIMITED = "rate_limited"
    BROKER_REJECTED = "broker_rejected"
    BROKER_UNAVAILABLE = "broker_unavailable"
    BROKER_ANSWER_UNKNOWN = "broker_answer_unknown"
    SHORT_NOT_ALLOWED = "short_not_allowed"
    PROTECTIVE_PRICE_INVALID = "protective_price_invalid"
    STOP_LOSS_REQUIRED = "stop_loss_required"
    SHUTTING_DOWN = "shutting_down"
    FIRM_EXPOSURE = "firm_exposure"  # the firm's gross exposure limit (gateway.firm)


class DecisionKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    BLOCKED = "blocked"


# --- what a client may send ----------------------------------------------------------------
#
# A number a client sends travels as a Decimal through the checks, as text into the journal, as
# a JSON number (an IEEE double) in every answer and as a double to the broker adapters. All of
# them hold the same number when it has
#   - at most 15 significant digits: a double carries any 15-digit decimal exactly (DBL_DIG), so
#     float() and back gives the number that was sent, and two different numbers never collapse
#     into one (nor into one body hash);
#   - at most 9 decimal places: the smallest step, 0.000000001, is Alpaca's fractional-share
#     precision and finer than any sub-penny tick (0.0001 for stocks, 1e-8 for crypto quotes);
#     1e-400 would be 0 as a double;
#   - a magnitude below 10**12: beyond any real price or share count, and it keeps every figure
#     the checks form (quantity x price < 1e24, over equity, times a fraction) finite; Decimal's
#     28-digit context rounds a product of two 15-digit numbers only in its last two digits.
# Anything else is refused with the field and the reason (422), never rounded quietly.

MAX_SIGNIFICANT_DIGITS = 15
MAX_DECIMAL_PLACES = 9
MAGNITUDE_LIMIT = Decimal(10) ** 12

_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _exponent_in_range(value: Any) -> Any:
    """Text like 1e99999999999999999999 is a number whose exponent no Decimal holds: say so,
    rather than 'not a number'."""
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        try:
            Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"exponent out of range: {value.strip()[:40]}") from exc
    return value


def _carried_exactly(value: Decimal) -> Decimal:
    """Refuse a finite number outside the domain above; otherwise return it in its plain form
    (1E+2 becomes 100, 1.50 becomes 1.5): the same number, as text the journal and messages can
    show as is. Works on the digits alone: no Decimal arithmetic, so nothing can overflow."""
    if value.copy_abs() >= MAGNITUDE_LIMIT:
        raise ValueError(f"must be below {MAGNITUDE_LIMIT:f} in magnitude")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked before
    zeros = 0  # trailing zeros carry no precision
    while zeros < len(digits) - 1 and digits[-1 - zeros] == 0:
        zeros += 1
    if -(exponent + zeros) > MAX_DECIMAL_PLACES:
        raise ValueError(
            f"has more than {MAX_DECIMAL_PLACES} decimal places "
            f"(the smallest step is {Decimal(1).scaleb(-MAX_DECIMAL_PLACES):f})"
        )
    if len(digits) - zeros > MAX_SIGNIFICANT_DIGITS:
        raise ValueError(
            f"has {len(digits) - zeros} significant digits; at most {MAX_SIGNIFICANT_DIGITS} "
            "are carried exactly"
        )
    if exponent > 0:
        return Decimal((sign, digits + (0,) * exponent, 0))
    fractional_zeros = min(zeros, -exponent)
    if fractional_zeros:
        return Decimal(
            (sign, digits[: len(digits) - fractional_zeros], exponent + fractional_zeros)
        )
    return value


ExactPositiveNum = Annotated[
    PositiveNum,
    AfterValidator(_carried_exactly),
    BeforeValidator(_exponent_in_range),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e12},
                {"type": "string"},
            ],
            "description": "A number above 0 and below 1e12, with at most 15 significant "
            "digits and at most 9 decimal places (a JSON number, or text that is one).",
        }
    ),
]
"""A positive number a client sends, inside the domain the gateway carries exactly."""


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    try:
        # JSON can carry a lone surrogate ("\ud800"); pydantic lets it through an optional
        # str. Stored, it would make every answer that shows it unencodable (a 500).
        stripped.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone surrogate is not)") from None
    return stripped


NonBlankText = Annotated[str, AfterValidator(_not_blank)]
"""Free text a client sends: stripped, never blank, and encodable as UTF-8."""

EPOCH_MIN = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MAX = datetime(2200, 1, 1, tzinfo=UTC)


def _epoch_seconds(value: Any) -> Any:
    """Epoch seconds (a number, or text that is one) become a UTC time here, after a range
    check: NaN, 1e300 or a negative epoch never reach datetime.fromtimestamp. Other text goes
    on to pydantic's ISO-8601 parser."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO-8601 time or epoch seconds, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value  # not a number: ISO-8601, or an error from the datetime parser
    if isinstance(value, Decimal):  # a JSON number read exactly (gateway.http.exact_json)
        value = float(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number of epoch seconds")
        if not EPOCH_MIN.timestamp() <= value < EPOCH_MAX.timestamp():
            raise ValueError(
                f"epoch seconds must lie in [{EPOCH_MIN.timestamp():.0f}, "
                f"{EPOCH_MAX.timestamp():.0f}) (years {EPOCH_MIN.year} to {EPOCH_MAX.year - 1})"
            )
        return datetime.fromtimestamp(value, UTC)
    return value


def _sane_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # an ISO time without a zone is taken as UTC
    # Compared before converting: converting year 1 or 9999 to UTC can overflow.
    if not EPOCH_MIN <= value < EPOCH_MAX:
        raise ValueError(f"must lie in the years {EPOCH_MIN.year} to {EPOCH_MAX.year - 1}")
    return value.astimezone(UTC)


QuoteTime = Annotated[
    datetime,
    BeforeValidator(_epoch_seconds),
    AfterValidator(_sane_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "ISO-8601 (UTC when it names no zone) or epoch seconds, "
            "from 1970 up to 2200.",
        }
    ),
]
"""A quote's time as a client sends it: ISO-8601 (UTC when it names no zone) or epoch seconds,
between 1970 and 2200; always a timezone-aware UTC datetime once validated."""


SignalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9./-]{1,16}$")]
StrategyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class Signal(BaseModel):
    """A strategy's request to trade. Unknown fields are refused; the error names the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_id: SignalId
    strategy: StrategyName
    symbol: Symbol
    side: Side
    quantity: ExactPositiveNum
    order_type: OrderType = OrderType.MARKET
    limit_price: ExactPositiveNum | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    stop_price: ExactPositiveNum | None = None
    # A bracket: exits held by the broker once the entry fills (one cancels the other).
    stop_loss_price: ExactPositiveNum | None = None
    take_profit_price: ExactPositiveNum | None = None

    @model_validator(mode="after")
    def _prices_match_type(self) -> Signal:
        check_limit_price(self.order_type, self.limit_price, self.stop_price)
        return self


class OrderReplace(BaseModel):
    """PATCH /v1/orders/{client_order_id}: what changes on a resting order, decided like a
    signal and idempotent on its own ``signal_id``. A field left out keeps its value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_id: SignalId
    quantity: ExactPositiveNum | None = None
    limit_price: ExactPositiveNum | None = None
    stop_price: ExactPositiveNum | None = None

    @model_validator(mode="after")
    def _something(self) -> OrderReplace:
        if self.quantity is None and self.limit_price is None and self.stop_price is None:
            raise ValueError("quantity, limit_price or stop_price: nothing to change")
        return self


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    message: str


_iso = PlainSerializer(lambda ts: ts.isoformat(), return_type=str, when_used="json")


class OrderLeg(BaseModel):
    """A bracket's exit, held by the broker (``Decision.order.legs``)."""

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    role: Literal["stop_loss", "take_profit"]
    order_type: OrderType
    stop_price: Num | None = None
    limit_price: Num | None = None
    status: str


class DecisionOrder(BaseModel):
    model_config = ConfigDict(frozen=True)

    client_order_id: str
    broker_order_id: str | None
    status: str
    symbol: str
    side: Side
    quantity: Num
    price: Num
    notional: Num
    quote_time: Annotated[datetime, _iso] | None
    order_type: OrderType = OrderType.MARKET
    priced_conservatively: bool = False
    # What the broker filled at, on average; null until something fills. ``price`` stays the
    # price the order was valued at by the checks.
    avg_fill_price: Num | None = None
    # A bracket's exits; [] for a plain order.
    legs: list[OrderLeg] = Field(default_factory=list)


class Order(BaseModel):
    """The API's order view: the broker's fields, whose order it is, and when it changed."""

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: Num
    filled_quantity: Num
    status: str
    limit_price: Num | None = None
    avg_fill_price: Num | None = None
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    stop_price: Num | None = None
    strategy: str | None = None
    signal_id: str | None = None
    # A bracket leg: its entry's client_order_id; null for any other order.
    parent_id: str | None = None
    created_at: str
    updated_at: str


class FillRecord(BaseModel):
    """One execution, as /v1/fills and the event stream give it."""

    model_config = ConfigDict(frozen=True)

    fill_id: str
    client_order_id: str
    strategy: str | None
    signal_id: str | None
    symbol: str
    side: Side
    quantity: Num
    price: Num
    ts: str


class DecisionRisk(BaseModel):
    model_config = ConfigDict(frozen=True)

    equity: Num | None = None
    position_risk: Num | None = None
    heat_before: Num | None = None
    heat_after: Num | None = None


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal_id: str
    decision: DecisionKind
    reasons: list[Reason] = Field(default_factory=list)
    order: DecisionOrder | None = None
    risk: DecisionRisk = DecisionRisk()


class OutcomeReport(BaseModel):
    """A strategy reports how its last signal generation went (feeds the failure tracker)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: StrategyName
    symbol: Symbol | None = None
    ok: bool
    failure_type: (
        Literal["strategy_error", "data_error", "broker_error", "timeout", "validation_error"]
        | None
    ) = None
    error: NonBlankText | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _failure_fields(self) -> OutcomeReport:
        if self.ok and (self.failure_type or self.error):
            raise ValueError("failure_type: only a failed outcome (ok: false) carries one")
        return self


class HaltRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: NonBlankText = Field(max_length=500)
    # "firm": halt (or kill) every gateway of the firm, through PostgreSQL (v2).
    scope: Literal["gateway", "firm"] = "gateway"


class ResumeRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    force: bool = False
    auth_code: str | None = Field(default=None, max_length=500)


class SimQuote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    bid: ExactPositiveNum
    ask: ExactPositiveNum
    ts: QuoteTime | None = None
