"""Fixtures for the IB adapter tests: a fake TWS on a free port and adapters connected to it.

Every wait is on an event with a timeout (``support.next_event``), never a bare sleep.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so ``tests.fakes`` imports however pytest was started
    sys.path.insert(0, str(ROOT))

from brokers.ib.broker import IBBroker  # noqa: E402
from tests.fakes.fake_tws import FakeTWS  # noqa: E402
from tests.integration.ib.support import ACCOUNT, FAST, MakeBroker  # noqa: E402


@pytest.fixture
async def tws() -> AsyncIterator[FakeTWS]:
    fake = FakeTWS([ACCOUNT])
    fake.set_quote("AAPL", 199.95, 200.05)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def make_broker(tws: FakeTWS) -> AsyncIterator[MakeBroker]:
    """Build (and by default connect) adapters against the fake; all are closed at the end."""
    made: list[IBBroker] = []

    async def make(connect: bool = True, **kwargs: Any) -> IBBroker:
        options = {**FAST, "port": tws.port, "client_id": 17, **kwargs}
        broker = IBBroker("127.0.0.1", **options)
        made.append(broker)
        if connect:
            await broker.connect()
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
async def broker(make_broker: MakeBroker) -> IBBroker:
    return await make_broker()
