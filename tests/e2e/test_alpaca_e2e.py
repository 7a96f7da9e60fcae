"""The whole gateway with ``broker: alpaca``: Alpaca's REST answers from a cassette
(cassettes/alpaca/e2e_gateway.yaml), its two websockets from the local fakes.

In-process (GatewayService behind the ASGI app) rather than a ``gateway serve`` process: vcrpy
replays HTTP inside the process that makes the requests. The adapter is built by the gateway
itself from gateway.yaml (stream URLs) and the environment (keys), as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import vcr

from gateway.config import GatewayConfig
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from tests.conftest import TEST_ENV, api_client, signal
from tests.fakes.alpaca_streams import FakeDataStream, FakeTradingStream, order_json

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ALPACA_API_KEY": "PKE2ETESTKEY", "ALPACA_SECRET_KEY": "e2e-test-secret"}
BROKER_ORDER_ID = "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


async def until(condition: Callable[[], Any], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 (the gateway's state has no event to await)
            await asyncio.sleep(0.02)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTradingStream, FakeDataStream]]:
    trading = FakeTradingStream(key=KEYS["ALPACA_API_KEY"], secret=KEYS["ALPACA_SECRET_KEY"])
    data = FakeDataStream(key=KEYS["ALPACA_API_KEY"], secret=KEYS["ALPACA_SECRET_KEY"])
    await trading.start()
    await data.start()
    yield trading, data
    await trading.stop()
    await data.stop()


async def test_gateway_trades_through_alpaca(
    make_config: Callable[..., GatewayConfig],
    fakes: tuple[FakeTradingStream, FakeDataStream],
) -> None:
    trading, data = fakes
    config = make_config(
        {
            "gateway": {"broker": "alpaca"},
            "brokers": {
                "alpaca": {
                    "feed": "iex",
                    "trading_stream_url": trading.url,
                    "data_stream_url": data.url,
                }
            },
        }
    )
    recorder = vcr.VCR(
        cassette_library_dir=str(ROOT / "cassettes" / "alpaca"),
        record_mode="none",
        ignore_hosts=["gateway"],  # the in-process API
        filter_headers=["APCA-API-KEY-ID", "APCA-API-SECRET-KEY"],
    )
    # Repeats: the gateway reads account, positions and open orders at start, at
    # reconciliation and on a kill; the answers stay the same.
    with recorder.use_cassette("e2e_gateway.yaml", allow_playback_repeats=True) as cassette:
        service = GatewayService(config, environ={**TEST_ENV, **KEYS})
        await service.start()
        try:
            async with api_client(service) as client:
                status = (await client.get("/v1/status")).json()
                assert status["broker"] == {"name": "alpaca", "connected": True}

                # No quote streamed yet: the REST snapshot (from 2023) is too old to trade on,
                # and the symbol is subscribed on the stream as a side effect.
                first = (await client.post("/v1/signals", json=signal("e2e-alpaca-1"))).json()
                assert [r["code"] for r in first["reasons"]] == ["quote_stale"]
                await data.wait_subscribed("AAPL")
                await data.send_quote("AAPL", 190.85, 190.88)
                await until(
                    lambda: (
                        service.quotes.age_s("AAPL") is not None
                        and service.quotes.age_s("AAPL") < 5
                    )
                )

                answer = (await client.post("/v1/signals", json=signal("e2e-alpaca-2"))).json()
                assert answer["decision"] == "accepted", answer
                assert answer["order"]["client_order_id"] == client_order_id("e2e-alpaca-2")
                assert answer["order"]["broker_order_id"] == BROKER_ORDER_ID
                assert answer["order"]["price"] == 190.88  # market buy at the streamed ask

                # The fill arrives on the trading stream and moves the book.
                await trading.send_update(
                    "fill",
                    order_json(
                        BROKER_ORDER_ID,
                        client_order_id("e2e-alpaca-2"),
                        qty="10",
                        status="filled",
                        filled_qty="10",
                        filled_avg_price="190.87",
                    ),
                    qty="10",
                    price="190.87",
                    execution_id="e2e-exec-1",
                )
                book = service.engine.book
                await until(lambda: "AAPL" in book.holdings and book.holdings["AAPL"].qty == 10)
                positions = (await client.get("/v1/positions")).json()
                assert [(p["symbol"], p["qty"]) for p in positions] == [("AAPL", 10)]

                # The data link drops: at once no trading on old quotes; back after reconnect.
                await data.drop()
                await until(lambda: not service.broker.connected)
                stale = (await client.post("/v1/signals", json=signal("e2e-alpaca-3"))).json()
                assert [r["code"] for r in stale["reasons"]] == ["quote_stale"]
                await until(lambda: service.broker.connected)

                kill = (await client.post("/v1/kill", json={"reason": "e2e drill"})).json()
                assert kill["cancelled"] == 0 and kill["failed"] == []
        finally:
            await service.stop()
    posts = sum(n for i, n in cassette.play_counts.items() if cassette.requests[i].method == "POST")
    assert posts == 1  # three signals, one order
