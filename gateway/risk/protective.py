"""Protective exits of a signal: the stop loss and take profit its bracket carries.

A signal may name ``stop_loss_price`` and ``take_profit_price``; ``risk_management.
protective_stop`` decides what happens to one that opens or grows a position without a stop:
``none`` leaves it unprotected, ``auto`` gives it a stop at ``stop_loss_percent`` from its entry
price, ``required`` refuses it (``stop_loss_required``). A stop or take profit on the wrong side
of the market is refused (``protective_price_invalid``): for a buy the stop below the ask and
the take profit above it, for a sell the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from brokers.base import Quote, Side
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
            stop = auto_stop(signal.side, price, risk.risk_management.stop_loss_percent)
            added = True
            if stop <= ZERO:
                return Reason(
                    code=ReasonCode.PROTECTIVE_PRICE_INVALID,
                    message=f"no stop fits below the price {price}: name a stop_loss_price",
                )
    if stop is None and take is None:
        return NONE
    wrong = _wrong_side(signal.side, stop, take, quote, price)
    if wrong is not None:
        return Reason(code=ReasonCode.PROTECTIVE_PRICE_INVALID, message=wrong)
    return Protection(stop, take, added)


def _wrong_side(
    side: Side,
    stop: Decimal | None,
    take: Decimal | None,
    quote: Quote | None,
    price: Decimal,
) -> str | None:
    """Why an exit is on the wrong side of the market, or None. Measured against the side the
    entry trades at (the ask for a buy, the bid for a sell), or the entry's value without a
    quote."""
    if side is Side.BUY:
        ref, name = (quote.ask, "ask") if quote is not None else (price, "entry price")
        if stop is not None and stop >= ref:
            return f"stop_loss_price {stop} must be below the {name} {ref} for a buy"
        if take is not None and take <= ref:
            return f"take_profit_price {take} must be above the {name} {ref} for a buy"
        return None
    ref, name = (quote.bid, "bid") if quote is not None else (price, "entry price")
    if stop is not None and stop <= ref:
        return f"stop_loss_price {stop} must be above the {name} {ref} for a sell"
    if take is not None and take >= ref:
        return f"take_profit_price {take} must be below the {name} {ref} for a sell"
    return None
