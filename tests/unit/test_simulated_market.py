"""The simulated market keeps streaming every symbol it quotes, whatever gets subscribed."""

from __future__ import annotations

import asyncio

from brokers.base import QuoteEvent
from brokers.simulated import SimulatedBroker


async def test_subscribing_an_unquoted_symbol_silences_no_other_symbol() -> None:
    sim = SimulatedBroker(quotes={"AAPL": (199.95, 200.05), "SPY": (589.95, 590.05)}, tick_s=0.01)
    await sim.connect()
    try:
        sim.subscribe_quotes(["TSLA"])  # a signal for a symbol this market does not quote
        sim.subscribe_quotes(["AAPL"])
        seen: set[str] = set()

        async def collect() -> None:
            async for event in sim.events():
                if isinstance(event, QuoteEvent):
                    seen.add(event.quote.symbol)
                    if seen >= {"AAPL", "SPY"}:
                        return

        # Ticks keep publishing SPY, never subscribed, and AAPL; TSLA has no market.
        await asyncio.wait_for(collect(), timeout=10)
        assert "TSLA" not in seen
    finally:
        await sim.close()
