"""A quote for a symbol nothing has streamed yet: the broker's REST snapshot, then its stream."""

from __future__ import annotations

import asyncio
import logging

from brokers.base import Broker
from brokers.errors import BrokerError
from gateway.risk.quotes import QuoteBook

log = logging.getLogger("gateway.pipeline.engine")


async def snapshot_quote(broker: Broker, quotes: QuoteBook, symbol: str) -> None:
    """Subscribe, and take the snapshot unless a streamed quote arrived meanwhile; a snapshot
    that fails leaves the symbol without a quote (the order is then refused, never guessed)."""
    broker.subscribe_quotes([symbol])
    try:
        quote = await asyncio.wait_for(broker.quote(symbol), timeout=2.0)
    except (BrokerError, TimeoutError) as exc:
        log.info("no quote snapshot for %s: %s", symbol, exc, extra={"symbol": symbol})
        return
    if quotes.get(symbol) is None:
        quotes.update(quote)
