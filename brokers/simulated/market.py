"""The simulated market: the latest quote per symbol, and when an order crosses it.

Deterministic: a market order fills at once at the ask (buy) or bid (sell); a limit order fills
when the market reaches its limit, at the quote (the limit or better). A stop triggers when the
market reaches its stop price (a buy stop when the ask is at or above it, a sell stop when the
bid is at or below it); once triggered a stop fills like a market order and a stop_limit like a
limit order at its limit price, and stays triggered whatever the market does next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from brokers.base import BrokerOrder, OrderType, Quote, Side


@dataclass(slots=True)
class SimQuote:
    bid: Decimal
    ask: Decimal
    ts: datetime
    pinned: bool  # set with an explicit ts: the ticker leaves its timestamp alone

    def as_quote(self, symbol: str) -> Quote:
        return Quote(symbol=symbol, bid=self.bid, ask=self.ask, ts=self.ts)

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


def stop_reached(order: BrokerOrder, quote: SimQuote) -> bool:
    """Whether ``quote`` triggers the stop of a stop or stop_limit ``order``."""
    stop = order.stop_price
    assert stop is not None
    return quote.ask >= stop if order.side is Side.BUY else quote.bid <= stop


def crossing_price(order: BrokerOrder, quote: SimQuote, triggered: bool = False) -> Decimal | None:
    """The price ``order`` fills at against ``quote`` now, or None while it does not cross.

    ``triggered``: whether the stop of a stop or stop_limit order has triggered (an untriggered
    one never fills)."""
    if order.order_type.has_stop and not triggered:
        return None
    if order.order_type in (OrderType.MARKET, OrderType.STOP):
        return quote.ask if order.side is Side.BUY else quote.bid
    limit = order.limit_price
    assert limit is not None
    if order.side is Side.BUY and quote.ask <= limit:
        return quote.ask
    if order.side is Side.SELL and quote.bid >= limit:
        return quote.bid
    return None


def reserve_price(order: BrokerOrder, quote: SimQuote | None) -> Decimal:
    """The price each unit of a buy ``order`` is valued at for buying power: its limit, the
    ask for a market order, max(stop, ask) for a stop (the stop alone without a quote)."""
    if order.limit_price is not None:
        return order.limit_price
    if order.order_type is OrderType.STOP:
        assert order.stop_price is not None
        return order.stop_price if quote is None else max(order.stop_price, quote.ask)
    return Decimal(0) if quote is None else quote.ask
