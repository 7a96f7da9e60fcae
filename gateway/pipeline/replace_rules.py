"""What a replace may change, and the risk it is checked for.

A replace is checked as the order it makes, against the book without the order it replaces, so
only the exposure it adds counts (a bigger quantity, a limit or a stop further through the
market). One that adds exposure faces every pre-trade check a new signal would face; one that
adds none faces those of the order itself (its quantity, its notional, the price collar), and
passes REDUCE_ONLY. Checked with the engine's risk lock held, like a signal.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from brokers.base import BrokerOrder, OrderChange, OrderType, Side
from gateway.config import RiskConfig
from gateway.errors import ReplaceInvalid
from gateway.models import DecisionKind, OrderReplace, Reason, ReasonCode, Signal
from gateway.pipeline.admission import Admission, admit
from gateway.risk.book import Book
from gateway.risk.checks import (
    PRE_TRADE_CHECKS,
    Check,
    check_max_order_notional,
    check_max_order_quantity,
    check_price_collar,
)
from gateway.risk.quotes import Price, QuoteBook

# The checks of the order itself: a replace that adds no exposure still faces these.
ORDER_CHECKS: tuple[Check, ...] = (
    check_max_order_quantity,
    check_max_order_notional,
    check_price_collar,
)


def change_for(order: BrokerOrder, patch: OrderReplace) -> OrderChange:
    """The change the broker is asked for; ReplaceInvalid when the order cannot take it."""
    kind = order.order_type
    if kind is OrderType.MARKET:
        raise ReplaceInvalid("a market order cannot be replaced")
    if patch.limit_price is not None and not kind.has_limit:
        raise ReplaceInvalid(f"limit_price: a {kind.value} order has no limit price")
    if patch.stop_price is not None and not kind.has_stop:
        raise ReplaceInvalid(f"stop_price: a {kind.value} order has no stop price")
    if patch.quantity is not None and patch.quantity <= order.filled_quantity:
        raise ReplaceInvalid(
            f"quantity: {patch.quantity} is not above the {order.filled_quantity} already filled"
        )
    change = {
        name: value
        for name, value in (
            ("quantity", patch.quantity),
            ("limit_price", patch.limit_price),
            ("stop_price", patch.stop_price),
        )
        if value is not None and value != getattr(order, name)
    }
    if not change:
        raise ReplaceInvalid("nothing to change: the order has these values already")
    return OrderChange(**change)


def replaced(order: BrokerOrder, change: OrderChange) -> BrokerOrder:
    """The order as it will be once the broker takes the change."""
    updates = {k: v for k, v in change.model_dump().items() if v is not None}
    return order.model_copy(update=updates)


def adds_exposure(before: BrokerOrder, after: BrokerOrder) -> bool:
    """More to fill, or a price further through the market (it fills sooner or worse)."""
    if after.remaining_quantity > before.remaining_quantity:
        return True
    buy = before.side is Side.BUY
    old, new = before.limit_price, after.limit_price
    if old is not None and new is not None and (new > old if buy else new < old):
        return True
    old, new = before.stop_price, after.stop_price
    # A buy stop triggers when the ask rises to it: lower is sooner (a sell stop: higher).
    return old is not None and new is not None and (new < old if buy else new > old)


def as_signal(signal_id: str, strategy: str, order: BrokerOrder) -> Signal:
    """The order a replace makes, as the signal the checks read. Built, not validated: its
    values come from a validated order and a validated change."""
    return Signal.model_construct(
        signal_id=signal_id,
        strategy=strategy,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        time_in_force=order.time_in_force,
        stop_price=order.stop_price,
    )


def admit_replace(
    signal: Signal,
    before: BrokerOrder,
    after: BrokerOrder,
    priced: Price,
    *,
    book: Book,
    quotes: QuoteBook,
    buying_power: Callable[[], Decimal],
    risk: RiskConfig,
    reduce_only: str | None,
) -> Admission:
    """The replace's admission, with the order it replaces set aside (its exposure is the
    replace's own). Call with the risk lock held."""
    grows = adds_exposure(before, after)
    with book.set_aside(before.client_order_id):
        admission = admit(
            signal,
            priced,
            book=book,
            quotes=quotes,
            buying_power=buying_power(),
            risk=risk,
            reduce_only=None,
            checks=PRE_TRADE_CHECKS if grows else ORDER_CHECKS,
            protect=False,
        )
    if grows and reduce_only is not None:
        reason = Reason(
            code=ReasonCode.REDUCE_ONLY,
            message=f"reduce-only ({reduce_only}): a replace that adds exposure is blocked",
        )
        return Admission(priced, admission.risk, (DecisionKind.BLOCKED, [reason]))
    return admission
