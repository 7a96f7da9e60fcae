"""Pre-trade checks: each rule is a small function returning a Refusal or None.

The pipeline is the list ``PRE_TRADE_CHECKS``, read top to bottom; a rejected decision lists every
rule that failed, not only the first. Risk math is exact (Decimal): with a 5% heat limit, an order
that brings heat to exactly 5.00% passes and one that brings it to 5.0001% does not.

    position risk of an order = |qty| x |price - stop| / equity with a protective stop,
                                exposure x stop_loss_percent / equity without one
    portfolio heat            = money at risk over positions, open and in-flight orders, each
                                to its stop or at stop_loss_percent (Book.at_risk) / equity
    short rule                = held - open and in-flight sells - this sell >= 0,
                                unless pre_trade.allow_short
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from brokers.base import Quote, Side
from gateway.config import RiskConfig
from gateway.models import Reason, ReasonCode, Signal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class OrderContext:
    """Everything a check may look at, computed once per signal under the risk lock; the
    derived figures (below the inputs) are computed once, at construction."""

    signal: Signal
    price: Decimal
    quote: Quote | None
    equity: Decimal
    position_qty: Decimal  # signed, including pending orders
    held_qty: Decimal  # signed position from fills alone
    pending_sell_qty: Decimal  # unfilled quantity of open and in-flight sells in this symbol
    gross_exposure: Decimal  # positions + open orders + reservations, before this order
    buying_power: Decimal
    risk: RiskConfig
    at_risk: Decimal  # money at risk before this order (Book.at_risk)
    protective_stop: Decimal | None = None  # the stop loss the order's bracket carries
    exposure: Decimal = field(init=False)
    signed_qty: Decimal = field(init=False)
    reduces_only: bool = field(init=False)  # the order shrinks a position and does not flip it
    adds_exposure: bool = field(init=False)
    stop: Decimal = field(init=False)
    position_risk: Decimal = field(init=False)
    heat_before: Decimal = field(init=False)
    heat_after: Decimal = field(init=False)

    def __post_init__(self) -> None:
        qty = self.signal.quantity
        exposure = qty * self.price
        signed = qty if self.signal.side is Side.BUY else -qty
        pos = self.position_qty
        reduces = not (pos == ZERO or (pos > 0) == (signed > 0)) and qty <= abs(pos)
        stop = self.risk.risk_management.stop_loss_percent
        equity = self.equity
        protective = self.protective_stop
        at_risk = exposure * stop if protective is None else qty * abs(self.price - protective)
        position_risk = at_risk / equity if equity > 0 else Decimal(1)
        heat_before = self.at_risk / equity if equity > 0 else Decimal(1)
        for name, value in (
            ("exposure", exposure),
            ("signed_qty", signed),
            ("reduces_only", reduces),
            ("adds_exposure", not reduces),
            ("stop", stop),
            ("position_risk", position_risk),
            ("heat_before", heat_before),
            ("heat_after", heat_before if reduces else heat_before + position_risk),
        ):
            object.__setattr__(self, name, value)


Check = Callable[[OrderContext], Reason | None]


def check_max_order_quantity(ctx: OrderContext) -> Reason | None:
    limit = ctx.risk.pre_trade.max_order_quantity
    if ctx.signal.quantity > limit:
        return Reason(
            code=ReasonCode.MAX_ORDER_QUANTITY,
            message=f"quantity {ctx.signal.quantity} exceeds max_order_quantity {limit}",
        )
    return None


def check_max_order_notional(ctx: OrderContext) -> Reason | None:
    limit = ctx.risk.pre_trade.max_order_notional
    if ctx.exposure > limit:
        return Reason(
            code=ReasonCode.MAX_ORDER_NOTIONAL,
            message=f"notional {ctx.exposure:.2f} exceeds max_order_notional {limit}",
        )
    return None


def check_price_collar(ctx: OrderContext) -> Reason | None:
    """A limit reaching through the market by more than the collar is refused; passive ones pass.

    A stop_limit's limit is measured from where its stop triggers: max(stop, ask) for a buy,
    min(stop, bid) for a sell (once triggered it is a limit order against that market)."""
    signal, quote = ctx.signal, ctx.quote
    if not signal.order_type.has_limit or signal.limit_price is None or quote is None:
        return None
    collar = ctx.risk.pre_trade.price_collar
    stop = signal.stop_price
    if signal.side is Side.BUY:
        base, name = (quote.ask, "ask") if stop is None or stop <= quote.ask else (stop, "stop")
        bound = base * (1 + collar)
        if signal.limit_price > bound:
            return Reason(
                code=ReasonCode.PRICE_COLLAR,
                message=f"buy limit {signal.limit_price} above {name} {base} + {collar:%} "
                f"({bound:.4f})",
            )
    else:
        base, name = (quote.bid, "bid") if stop is None or stop >= quote.bid else (stop, "stop")
        bound = base * (1 - collar)
        if signal.limit_price < bound:
            return Reason(
                code=ReasonCode.PRICE_COLLAR,
                message=f"sell limit {signal.limit_price} below {name} {base} - {collar:%} "
                f"({bound:.4f})",
            )
    return None


def check_buying_power(ctx: OrderContext) -> Reason | None:
    if ctx.signal.side is not Side.BUY or ctx.reduces_only:
        return None
    if ctx.exposure > ctx.buying_power:
        return Reason(
            code=ReasonCode.BUYING_POWER,
            message=f"notional {ctx.exposure:.2f} exceeds buying power {ctx.buying_power:.2f}",
        )
    return None


def check_position_risk(ctx: OrderContext) -> Reason | None:
    if not ctx.adds_exposure:
        return None
    limit = ctx.risk.risk_management.max_single_position_risk
    if ctx.position_risk > limit:
        return Reason(
            code=ReasonCode.POSITION_RISK,
            message=f"position risk {ctx.position_risk:.4%} exceeds "
            f"max_single_position_risk {limit:%}",
        )
    return None


def check_portfolio_heat(ctx: OrderContext) -> Reason | None:
    if not ctx.adds_exposure:
        return None
    limit = ctx.risk.risk_management.max_portfolio_heat
    if ctx.heat_after > limit:
        return Reason(
            code=ReasonCode.PORTFOLIO_HEAT,
            message=f"portfolio heat would be {ctx.heat_after:.4%} "
            f"(now {ctx.heat_before:.4%}), above max_portfolio_heat {limit:%}",
        )
    return None


def check_short(ctx: OrderContext) -> Reason | None:
    """A sell may not take the position below zero, counting every sell already on its way;
    pending buys do not offset them, since they may never fill."""
    signal = ctx.signal
    if signal.side is not Side.SELL or ctx.risk.pre_trade.allow_short:
        return None
    after = ctx.held_qty - ctx.pending_sell_qty - signal.quantity
    if after < ZERO:
        return Reason(
            code=ReasonCode.SHORT_NOT_ALLOWED,
            message=f"selling {signal.quantity} {signal.symbol} would take the position to "
            f"{after} (held {ctx.held_qty}, open sells {ctx.pending_sell_qty}); "
            "pre_trade.allow_short is false",
        )
    return None


PRE_TRADE_CHECKS: tuple[Check, ...] = (
    check_max_order_quantity,
    check_max_order_notional,
    check_price_collar,
    check_buying_power,
    check_position_risk,
    check_portfolio_heat,
    check_short,
)


def run_checks(ctx: OrderContext, checks: tuple[Check, ...] = PRE_TRADE_CHECKS) -> list[Reason]:
    return [reason for check in checks if (reason := check(ctx)) is not None]
