"""The whole gateway, as a real ``gateway serve`` process, with ``broker: ib`` against the fake
TWS: a signal and its fill, a dropped TWS connection (quotes stale until it is back), and the
kill switch through IB's global cancel.

The fake TWS runs on its own event loop in a thread, because the gateway process connects to it
while this test waits (blocking) for the gateway to be ready.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway.client import GatewayClient
from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess
from tests.fakes.fake_tws import FakeTWS

T = TypeVar("T")


class TWSThread:
    """A FakeTWS on an event loop of its own; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake: FakeTWS = self.call(self._make())

    async def _make(self) -> FakeTWS:
        fake = FakeTWS(["DU7654321"])
        fake.set_quote("AAPL", 199.95, 200.05)
        await fake.start()
        return fake

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def do(self, fn: Callable[[], Any]) -> None:
        async def run() -> None:
            fn()

        self.call(run())

    def close(self) -> None:
        self.call(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def tws() -> Iterator[TWSThread]:
    runner = TWSThread()
    try:
        yield runner
    finally:
        runner.close()


def until(condition: Callable[[], Any], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)  # another process: nothing to await, so poll its API


def positions(gw: GatewayProcess) -> list[tuple[str, float]]:
    answer = httpx.get(f"{gw.url}/v1/positions", timeout=5,
                       headers={"Authorization": f"Bearer {STRATEGY_TOKEN}"})  # fmt: skip
    answer.raise_for_status()
    return [(p["symbol"], p["qty"]) for p in answer.json()]


def test_gateway_trades_through_ib(tmp_path: Path, tws: TWSThread) -> None:
    gw = GatewayProcess(tmp_path, gateway={
        "gateway": {"broker": "ib"},
        "brokers": {"ib": {"host": "127.0.0.1", "port": tws.fake.port, "client_id": 31}},
    })  # fmt: skip
    with gw, GatewayClient(gw.url, STRATEGY_TOKEN) as client:
        status = client.status()
        assert status["broker"] == {"name": "ib", "connected": True}
        assert tws.fake.clients == [31]  # the configured client id

        # a market buy is priced at the streamed ask and fills at IB
        bought = client.submit("ib-e2e-1", "momentum", "AAPL", "buy", 10)
        assert bought.decision == "accepted", bought
        assert bought.order is not None and float(bought.order.price) == 200.05
        assert bought.order.broker_order_id.isdigit()
        placed = tws.fake.order_by_ref(bought.order.client_order_id)
        assert placed is not None and str(placed.order_id) == bought.order.broker_order_id
        until(lambda: positions(gw) == [("AAPL", 10)])

        # TWS goes away: the gateway knows at once and refuses to price on old quotes
        tws.call(tws.fake.stop())
        until(lambda: client.status()["broker"]["connected"] is False)
        stale = client.submit("ib-e2e-2", "momentum", "AAPL", "buy", 1)
        assert [r.code for r in stale.reasons] == ["quote_stale"], stale

        # TWS is back: reconnected with the same client id, fresh quotes, trading again
        tws.do(lambda: tws.fake.state.quotes.update({"AAPL": (200.10, 200.20)}))
        tws.call(tws.fake.start())
        until(lambda: client.status()["broker"]["connected"] is True)
        resting = client.submit("ib-e2e-3", "momentum", "AAPL", "buy", 5,
                                order_type="limit", limit_price=190)  # fmt: skip
        assert resting.decision == "accepted", resting
        assert resting.order is not None and resting.order.status == "accepted"
        assert client.status()["orders"]["open"] == 1

        # kill switch: one global cancel at IB, each order confirmed cancelled
        kill = client.kill("e2e drill")
        assert kill["cancelled"] == 1 and kill["failed"] == [], kill
        assert len(tws.fake.requests_of(58)) == 1
        assert client.status()["halt"]["kill_switch"] is True
        assert all(not o.is_open for o in tws.fake.state.orders.values())
