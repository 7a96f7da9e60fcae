"""The gateway's own API models: the Signal a strategy sends and the Decision it gets back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
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
    SHUTTING_DOWN = "shutting_down"


class DecisionKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    BLOCKED = "blocked"


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
    quantity: PositiveNum
    order_type: OrderType = OrderType.MARKET
    limit_price: PositiveNum | None = None
    time_in_force: TimeInForce = TimeInForce.DAY

    @model_validator(mode="after")
    def _limit_price_matches_type(self) -> Signal:
        check_limit_price(self.order_type, self.limit_price)
        return self


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    message: str


_iso = PlainSerializer(lambda ts: ts.isoformat(), return_type=str, when_used="json")


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
    error: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _failure_fields(self) -> OutcomeReport:
        if self.ok and (self.failure_type or self.error):
            raise ValueError("failure_type: only a failed outcome (ok: false) carries one")
        return self


class HaltRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class ResumeRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    force: bool = False
    auth_code: str | None = Field(default=None, max_length=500)


class SimQuote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    bid: PositiveNum
    ask: PositiveNum
    ts: datetime | float | None = None
