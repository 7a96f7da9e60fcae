"""Fixtures for the Alpaca adapter tests: cassettes, a scripted HTTP transport, stream fakes.

No test here may reach the network: cassettes replay with ``record_mode="none"`` (a request
without a recorded answer fails), and ``_no_network`` refuses any socket that is not loopback.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from alpaca_helpers import FAST, KEY, SECRET  # also puts the repo root on sys.path

from brokers.alpaca.broker import AlpacaBroker
from brokers.retrying import RetryingBroker, RetryPolicy
from tests.fakes.alpaca_streams import FakeDataStream, FakeTradingStream
from tests.fakes.recorded_sleep import RecordedSleep


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def make_broker() -> Iterator[Callable[..., AlpacaBroker]]:
    """Adapters with short backoffs (REST needs no connect() nor close())."""

    def build(**options: Any) -> AlpacaBroker:
        return AlpacaBroker(KEY, SECRET, **{**FAST, **options})

    yield build


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def make_retrying(
    make_broker: Callable[..., AlpacaBroker], sleep: RecordedSleep
) -> Callable[..., RetryingBroker]:
    """An adapter behind the retry layer, as the gateway runs it; waits go to ``sleep``.
    ``policy`` is the RetryPolicy, every other option goes to the adapter."""

    def build(policy: RetryPolicy | None = None, **options: Any) -> RetryingBroker:
        return RetryingBroker(make_broker(**options), policy or RetryPolicy(), sleep=sleep)

    return build


@pytest.fixture
async def trading_fake() -> AsyncIterator[FakeTradingStream]:
    fake = FakeTradingStream(key=KEY, secret=SECRET)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def data_fake() -> AsyncIterator[FakeDataStream]:
    fake = FakeDataStream(key=KEY, secret=SECRET)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def streaming_broker(
    make_broker: Callable[..., AlpacaBroker],
    trading_fake: FakeTradingStream,
    data_fake: FakeDataStream,
) -> AsyncIterator[AlpacaBroker]:
    broker = make_broker(trading_stream_url=trading_fake.url, data_stream_url=data_fake.url)
    yield broker
    await broker.close()
