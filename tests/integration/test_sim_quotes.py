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


async def test_a_quote_that_stops_moving_shows_in_the_status_and_the_metrics(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.conftest import ADMIN_TOKEN

    service = await make_service(make_config())
    await _streamed(service, {"AAPL", "MSFT", "SPY"})
    async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
        assert (await client.get("/v1/status")).json()["quotes"]["stale"] == []
        old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        frozen = [{"symbol": "MSFT", "bid": 409.9, "ask": 410.1, "ts": old}]
        assert (await admin.post("/v1/sim/quotes", json=frozen)).status_code == 200
        assert (await client.get("/v1/status")).json()["quotes"]["stale"] == ["MSFT"]
        await service.risk_sweep()
        metrics = (await client.get("/metrics")).text
    ages = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gateway_quote_age_seconds{")
    }
    assert set(ages) == {"AAPL", "MSFT", "SPY"}
    assert ages["MSFT"] >= 600 > ages["AAPL"]
