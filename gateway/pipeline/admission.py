"""Admission under the risk lock: the order's context, its risk figures, and the gates that
look at the book (reduce-only, every pre-trade check). Runs with the engine's lock held, so
concurrent signals see each other's reservations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from brokers.base import Side, assemble
from gateway.config import RiskConfig
from gateway.models import DecisionKind, DecisionRisk, Reason, ReasonCode, Signal
from gateway.risk.book import Book
from gateway.risk.checks import PRE_TRADE_CHECKS, Check, OrderContext, run_checks
from gateway.risk.protective import NONE as NO_PROTECTION
from gateway.risk.protective import Protection, plan_protection
from gateway.risk.quotes import Price, QuoteBook


@dataclass(frozen=True, slots=True)
class Admission:
    price: Price
    risk: DecisionRisk
    refusal: tuple[DecisionKind, list[Reason]] | None = None
    protection: Protection = NO_PROTECTION
    reduces: bool = False  # the order only shrinks the position held now (see closes_held)


def closes_held(signal: Signal, book: Book) -> bool:
    """The order only shrinks the position held now, after every open order on the same side
    of it has filled: a resting order that may never fill is not counted as held (a sell
    against an unfilled buy would open a short)."""
    held = book.position_qty(signal.symbol)
    qty = signal.quantity
    if signal.side is Side.SELL:
        return held > 0 and qty <= held - book.pending_sell_qty(signal.symbol)
    pending_buys = book.pending_qty(signal.symbol) + book.pending_sell_qty(signal.symbol)
    return held < 0 and qty <= -held - pending_buys


def admit(
    signal: Signal,
    priced: Price,
    *,
    book: Book,
    quotes: QuoteBook,
    buying_power: Decimal,
    risk: RiskConfig,
    reduce_only: str | None,
    checks: tuple[Check, ...] = PRE_TRADE_CHECKS,
    protect: bool = True,
) -> Admission:
    """``protect``: plan the order's protective stop (a replace keeps the exits it has)."""
    marks = quotes.marks()
    equity = book.cash + book.market_value(marks)
    ctx = OrderContext(
        signal=signal,
        price=priced.value,
        quote=priced.quote,
        equity=equity,
        position_qty=book.position_qty(signal.symbol) + book.pending_qty(signal.symbol),
        held_qty=book.position_qty(signal.symbol),
        pending_sell_qty=book.pending_sell_qty(signal.symbol),
        gross_exposure=book.gross_exposure(marks),
        buying_power=buying_power,
        risk=risk,
        at_risk=book.at_risk(marks, risk.risk_management.stop_loss_percent),
    )
    planned = (
        plan_protection(signal, priced.value, priced.quote, grows=not ctx.reduces_only, risk=risk)
        if protect
        else NO_PROTECTION
    )
    protection = planned if isinstance(planned, Protection) else NO_PROTECTION
    if protection.stop_loss is not None:
        # Risk to the stop: the order's position risk and heat count its real distance.
        ctx = replace(ctx, protective_stop=protection.stop_loss)
    # Exact Decimals computed from validated values: no second validation.
    figures = assemble(
        DecisionRisk,
        {
            "equity": equity,
            "position_risk": ctx.position_risk,
            "heat_before": ctx.heat_before,
            "heat_after": ctx.heat_after,
        },
    )
    if reduce_only is not None and not ctx.reduces_only:
        reason = Reason(
            code=ReasonCode.REDUCE_ONLY,
            message=f"reduce-only ({reduce_only}): only orders that shrink a position pass",
        )
        return Admission(priced, figures, (DecisionKind.BLOCKED, [reason]))
    refusals = run_checks(ctx, checks)
    if isinstance(planned, Reason):
        refusals.append(planned)
    if refusals:
        return Admission(priced, figures, (DecisionKind.REJECTED, refusals))
    return Admission(priced, figures, protection=protection, reduces=closes_held(signal, book))
