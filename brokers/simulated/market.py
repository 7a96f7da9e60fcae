"""The simulated market: the latest quote per symbol, and when an order crosses it.

Deterministic: a market order fills at once at the ask (buy) or bid (sell); a limit order fills
when the market reaches its limit, at the quote (the limit or better).
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


def crossing_price(order: BrokerOrder, quote: SimQuote) -> Decimal | None:
    """The price ``order`` fills at against ``quote`` now, or None while it does not cross."""
    if order.order_type is OrderType.MARKET:
        return quote.ask if order.side is Side.BUY else quote.bid
    limit = order.limit_price
    assert limit is not None
    if order.side is Side.BUY and quote.ask <= limit:
        return quote.ask
    if order.side is Side.SELL and quote.bid >= limit:
        return quote.bid
    return None
