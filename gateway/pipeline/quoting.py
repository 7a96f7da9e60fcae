"""A quote for a symbol nothing has streamed yet: the broker's REST snapshot, then its stream;
and what a signal that could not be priced is told."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from brokers.base import Broker
from brokers.errors import BrokerError
from gateway.models import Reason, ReasonCode, Signal
from gateway.risk.quotes import PricingRefusal, QuoteBook

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


def unpriced_reasons(refusal: PricingRefusal, signal: Signal, limit: Decimal) -> list[Reason]:
    """Why a signal without a usable price is rejected: the pricing's reason, and the quantity
    limit too when it breaks it (every check that can be made without a price)."""
    reasons = [Reason(code=refusal.code, message=refusal.message)]
    if signal.quantity > limit:
        reasons.append(
            Reason(
                code=ReasonCode.MAX_ORDER_QUANTITY,
                message=f"quantity {signal.quantity} exceeds max_order_quantity {limit}",
            )
        )
    return reasons
