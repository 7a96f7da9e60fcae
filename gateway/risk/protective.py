"""Protective exits of a signal: the stop loss and take profit its bracket carries.

A signal may name ``stop_loss_price`` and ``take_profit_price``; ``risk_management.
protective_stop`` decides what happens to one that opens or grows a position without a stop:
``none`` leaves it unprotected, ``auto`` gives it a stop at ``stop_loss_percent`` from its entry
price, ``required`` refuses it (``stop_loss_required``). A stop or take profit on the wrong side
of the market is refused (``protective_price_invalid``): for a buy the stop below the ask and
the take profit above it, for a sell the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from brokers.base import OrderType, Quote, Side
from gateway.config import RiskConfig
from gateway.models import Reason, ReasonCode, Signal

ZERO = Decimal(0)
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")  # the tick of a price below one dollar


@dataclass(frozen=True, slots=True)
class Protection:
    """The exits to send with an entry (None: no such leg), and whether the stop was added."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    auto: bool = False

    @property
    def any(self) -> bool:
        return self.stop_loss is not None or self.take_profit is not None


NONE = Protection()


def auto_stop(side: Side, price: Decimal, stop_loss_percent: Decimal) -> Decimal:
    """The stop ``stop_loss_percent`` from ``price``, on the price's tick (a cent; 0.0001
    below a dollar), rounded away from the price (never a tighter stop than the risk config
    says; the risk counts its real distance). Zero when no tick fits below a buy's price."""
    tick = CENT if price >= 1 else SUB_PENNY
    if side is Side.BUY:
        return max((price * (1 - stop_loss_percent)).quantize(tick, rounding=ROUND_FLOOR), ZERO)
    return (price * (1 + stop_loss_percent)).quantize(tick, rounding=ROUND_CEILING)


def plan_protection(
    signal: Signal, price: Decimal, quote: Quote | None, *, grows: bool, risk: RiskConfig
) -> Protection | Reason:
    """The exits of ``signal`` valued at ``price``, or why it is refused.

    ``grows``: the signal opens or grows a position (one that only shrinks one needs no stop).
    """
    stop, take = signal.stop_loss_price, signal.take_profit_price
    added = False
    if stop is None and grows:
        policy = risk.risk_management.protective_stop
        if policy == "required":
            return Reason(
                code=ReasonCode.STOP_LOSS_REQUIRED,
                message="protective_stop is required: a signal that opens or grows a position "
                "names its stop_loss_price",
            )
        if policy == "auto":
            # From the worst fill the entry can have (a marketable limit buy fills at the ask,
            # below its limit): a stop from the limit could sit above the fill.
            low, high = _fills_between(signal, quote, price)
            base = low if signal.side is Side.BUY else high
            stop = auto_stop(signal.side, base, risk.risk_management.stop_loss_percent)
            added = True
            if stop <= ZERO:
                return Reason(
                    code=ReasonCode.PROTECTIVE_PRICE_INVALID,
                    message=f"no stop fits below the price {price}: name a stop_loss_price",
                )
    if stop is None and take is None:
        return NONE
    wrong = _wrong_side(signal, stop, take, quote, price)
    if wrong is not None:
        return Reason(code=ReasonCode.PROTECTIVE_PRICE_INVALID, message=wrong)
    return Protection(stop, take, added)


def _fills_between(signal: Signal, quote: Quote | None, price: Decimal) -> tuple[Decimal, Decimal]:
    """The lowest and highest price the entry can fill at, as far as its terms tell: a
    marketable limit fills at the market, a passive one at its limit, a stop once the market
    reaches it (at once when it is through it), a stop_limit from there up to its limit (down
    to it for a sell). Without a quote: the entry's value."""
    if quote is None:
        return price, price
    buy = signal.side is Side.BUY
    market = quote.ask if buy else quote.bid
    limit, stop = signal.limit_price, signal.stop_price
    through: Callable[[Decimal, Decimal], Decimal] = max if buy else min
    within: Callable[[Decimal, Decimal], Decimal] = min if buy else max
    if signal.order_type is OrderType.LIMIT and limit is not None:
        low = high = within(limit, market)
    elif signal.order_type is OrderType.STOP and stop is not None:
        low = high = through(stop, market)
    elif signal.order_type is OrderType.STOP_LIMIT and stop is not None and limit is not None:
        low, high = within(through(stop, market), limit), limit
    else:
        low = high = market
    return (low, high) if buy else (high, low)


def _wrong_side(
    signal: Signal,
    stop: Decimal | None,
    take: Decimal | None,
    quote: Quote | None,
    price: Decimal,
) -> str | None:
    """Why an exit is on the wrong side of the entry's fill, or None: for a buy the stop below
    the lowest price it can fill at and the take profit above the highest (a stop above a
    limit buy's fill would sell the position the moment it opens), for a sell the other way
    round. The market side (the ask for a buy, the bid for a sell) is the fill of a market
    order, and of a limit or stop that is through the market."""
    low, high = _fills_between(signal, quote, price)
    name = (
        "the market"
        if quote is not None and signal.order_type is OrderType.MARKET
        else ("the entry's fill")
    )
    if signal.side is Side.BUY:
        if stop is not None and stop >= low:
            return f"stop_loss_price {stop} must be below {name} ({low}) for a buy"
        if take is not None and take <= high:
            return f"take_profit_price {take} must be above {name} ({high}) for a buy"
        return None
    if stop is not None and stop <= high:
        return f"stop_loss_price {stop} must be above {name} ({high}) for a sell"
    if take is not None and take >= low:
        return f"take_profit_price {take} must be below {name} ({low}) for a sell"
    return None
