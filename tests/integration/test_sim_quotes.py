"""One unquoted symbol must not freeze every other quote: a signal for a symbol the simulated
market does not quote is refused, and every other symbol keeps trading well past max_age_s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def _streamed(service: GatewayService, symbols: set[str]) -> None:
    """Until the broker's stream (not a REST snapshot) has brought a quote for each symbol."""
    for _ in range(200):  # 10 s at most
        if all(service.quotes.get(s) is not None for s in symbols):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no streamed quote for {symbols} in 10 s")


async def test_a_signal_for_an_unquoted_symbol_leaves_the_other_quotes_fresh(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(
        gateway={
            "gateway": {"quotes": {"max_age_s": 1}},
            "brokers": {"simulated": {"tick_s": 0.2}},
        }
    )
    service = await make_service(config)
    await _streamed(service, {"AAPL", "SPY"})
    async with api_client(service) as client:
        first = (await client.post("/v1/signals", json=signal("aapl-before"))).json()
        assert first["decision"] == "accepted"

        tsla = (await client.post("/v1/signals", json=signal("tsla", symbol="TSLA"))).json()
        assert tsla["decision"] == "rejected"
        assert [r["code"] for r in tsla["reasons"]] == ["quote_missing"]

        # Well past max_age_s: a quote not republished since the TSLA signal is stale by now.
        await asyncio.sleep(3 * config.gateway.quotes.max_age_s)
        for sid, symbol in (("aapl-after", "AAPL"), ("spy-after", "SPY")):
            body = signal(sid, symbol=symbol, quantity=1)
            decision = (await client.post("/v1/signals", json=body)).json()
            assert decision["decision"] == "accepted", (symbol, decision["reasons"])
