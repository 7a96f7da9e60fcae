"""Live bid/ask for ``IBBroker``: ib_async tickers in, ``Quote``s out.

IB streams bid and ask as separate ticks (``reqMktData``) and gives them no exchange time, so a
quote's ``ts`` is the moment the tick arrived (ib_async stamps ``Ticker.time`` per packet). That
is also what makes the nightly reset safe: TWS may keep the socket up while data stops for
minutes, and then the quotes simply age; the gateway judges staleness by that age, never by the
connection alone.

Delayed data (market data type 3/4, ticks 66/67) is refused unless configured: a delayed quote is
a stale quote. When it is allowed, its ``ts`` is set back by the delay, so it still looks as old
as it is.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from brokers.base import Quote, utcnow

log = logging.getLogger(__name__)

LIVE, FROZEN, DELAYED, DELAYED_FROZEN = 1, 2, 3, 4
DELAYED_TYPES = frozenset({DELAYED, DELAYED_FROZEN})
DELAYED_TICKS = frozenset({66, 67, 68})  # delayed bid, ask, last
IB_DELAY = timedelta(minutes=15)  # IB's delayed US equity data lags by 15 minutes


def _price(value: Any) -> Decimal | None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return Decimal(repr(float(value)))


class QuoteBook:
    """Latest quote per symbol, and the symbols to (re)subscribe after every connect."""

    def __init__(self, *, allow_delayed: bool = False) -> None:
        self.allow_delayed = allow_delayed
        self.symbols: list[str] = []
        self._latest: dict[str, Quote] = {}
        self._arrived: dict[str, asyncio.Event] = {}
        self._refused: set[str] = set()

    def want(self, symbol: str) -> bool:
        """Add a symbol; True when it is new (and so needs a market data request)."""
        if symbol in self.symbols:
            return False
        self.symbols.append(symbol)
        return True

    async def wait(self, symbol: str, within_s: float) -> Quote | None:
        quote = self._latest.get(symbol)
        if quote is not None:
            return quote
        event = self._arrived.setdefault(symbol, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), within_s)
        except TimeoutError:
            return None
        return self._latest.get(symbol)

    def update(self, symbol: str, ticker: Any) -> Quote | None:
        """The quote for a ticker that just ticked, or None when it is unusable."""
        data_type = getattr(ticker, "marketDataType", LIVE)
        if any(getattr(t, "tickType", 0) in DELAYED_TICKS for t in ticker.ticks):
            data_type = DELAYED  # delayed ticks say so themselves, whatever came before
        if data_type in DELAYED_TYPES and not self.allow_delayed:
            if symbol not in self._refused:
                self._refused.add(symbol)
                log.warning("IB sends delayed data for %s; refused (allow_delayed is off)", symbol)
            return None
        bid, ask = _price(ticker.bid), _price(ticker.ask)
        if bid is None or ask is None:
            return None
        ts = ticker.time if isinstance(ticker.time, datetime) else utcnow()
        if ts.tzinfo is None:
            ts = utcnow()
        if data_type in DELAYED_TYPES:
            ts -= IB_DELAY
        # Every tick counts, even one that repeats the prices (a size change): it shows the
        # quote is still current, so it refreshes ts.
        quote = Quote(symbol=symbol, bid=bid, ask=ask, ts=ts)
        self._latest[symbol] = quote
        event = self._arrived.pop(symbol, None)
        if event is not None:
            event.set()
        return quote
