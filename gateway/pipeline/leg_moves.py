"""Moving a bracket's exit (PATCH on a leg): a stop loss's ``stop_price`` or a take profit's
``limit_price``, never its quantity (legs follow their position).

A leg is an exit, not new exposure, so the replace rules apply to the risk it changes: a stop
moved away from the market grows the money at risk by |qty| x (new distance - old distance),
which must pass ``max_portfolio_heat`` and ``max_single_position_risk`` like a new signal's risk
would (and is blocked in REDUCE_ONLY); a stop moved closer only lowers it. An exit must stay on
its side of the market: a sell stop below the bid, a buy stop above the ask, a sell take profit
above the bid, a buy take profit below the ask (``protective_price_invalid``).
"""

from __future__ import annotations

from decimal import Decimal

from brokers.base import BrokerOrder, Quote, Side
from gateway.config import RiskConfig
from gateway.errors import ReplaceInvalid
from gateway.models import DecisionKind, DecisionRisk, OrderReplace, Reason, ReasonCode
from gateway.pipeline.admission import Admission
from gateway.risk.book import Book
from gateway.risk.quotes import Price

ZERO = Decimal(0)


def check_leg_patch(role: str, patch: OrderReplace) -> None:
    """ReplaceInvalid unless the patch moves the one price the leg has."""
    field = "stop_price" if role == "stop_loss" else "limit_price"
    other = "limit_price" if role == "stop_loss" else "stop_price"
    if patch.quantity is not None:
        raise ReplaceInvalid("quantity: a bracket's legs follow their position")
    if getattr(patch, other) is not None:
        raise ReplaceInvalid(f"{other}: a {role} leg moves by its {field}")
    if getattr(patch, field) is None:
        raise ReplaceInvalid(f"{field}: the {role} leg's new price is required")


def _wrong_side(order: BrokerOrder, quote: Quote) -> str | None:
    stop, limit = order.stop_price, order.limit_price
    if order.side is Side.SELL:
        if stop is not None and stop >= quote.bid:
            return f"stop_price {stop} must stay below the bid {quote.bid}"
        if limit is not None and stop is None and limit <= quote.bid:
            return f"limit_price {limit} must stay above the bid {quote.bid}"
    else:
        if stop is not None and stop <= quote.ask:
            return f"stop_price {stop} must stay above the ask {quote.ask}"
        if limit is not None and stop is None and limit >= quote.ask:
            return f"limit_price {limit} must stay below the ask {quote.ask}"
    return None


def admit_leg_move(
    before: BrokerOrder,
    after: BrokerOrder,
    priced: Price,
    *,
    book: Book,
    marks: dict[str, Decimal],
    equity: Decimal,
    risk: RiskConfig,
    reduce_only: str | None,
) -> Admission:
    """The move's admission: the side of the market, then the risk it adds. Call with the
    risk lock held."""
    limits = risk.risk_management
    at_risk = book.at_risk(marks, limits.stop_loss_percent)
    added = ZERO
    if before.stop_price is not None and after.stop_price is not None:
        mark = marks.get(after.symbol, after.stop_price)
        added = after.remaining_quantity * (
            abs(mark - after.stop_price) - abs(mark - before.stop_price)
        )
    heat_before = at_risk / equity if equity > 0 else Decimal(1)
    heat_after = (at_risk + added) / equity if equity > 0 else Decimal(1)
    position = next(
        (
            p.at_risk
            for p in book.protection(marks, limits.stop_loss_percent)
            if p.symbol == after.symbol
        ),
        ZERO,
    )
    position_risk = (position + added) / equity if equity > 0 else Decimal(1)
    figures = DecisionRisk(
        equity=equity, position_risk=position_risk, heat_before=heat_before, heat_after=heat_after
    )
    reasons: list[Reason] = []
    quote = priced.quote
    wrong = _wrong_side(after, quote) if quote is not None else None
    if wrong is not None:
        reasons.append(Reason(code=ReasonCode.PROTECTIVE_PRICE_INVALID, message=wrong))
    if added > 0:
        if reduce_only is not None:
            reason = Reason(
                code=ReasonCode.REDUCE_ONLY,
                message=f"reduce-only ({reduce_only}): a stop moved away adds risk",
            )
            return Admission(priced, figures, (DecisionKind.BLOCKED, [reason]))
        if heat_after > limits.max_portfolio_heat:
            reasons.append(
                Reason(
                    code=ReasonCode.PORTFOLIO_HEAT,
                    message=f"heat {heat_after:.4%} would exceed max_portfolio_heat "
                    f"{limits.max_portfolio_heat:.2%}",
                )
            )
        if position_risk > limits.max_single_position_risk:
            reasons.append(
                Reason(
                    code=ReasonCode.POSITION_RISK,
                    message=f"position risk {position_risk:.4%} would exceed "
                    f"max_single_position_risk {limits.max_single_position_risk:.2%}",
                )
            )
    if reasons:
        return Admission(priced, figures, (DecisionKind.REJECTED, reasons))
    return Admission(priced, figures)
