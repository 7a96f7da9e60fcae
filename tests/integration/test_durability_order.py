"""The broker never sees an order whose intent is not committed.

The broker here reads the journal from a connection of its own (as another process would after
a crash) at the moment ``submit`` is called: the intent must already be there. Uncommitted rows
are invisible to another connection, so this fails if the engine calls the broker before its
commit, alone (commit at once) or with other signals in flight (group commit)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brokers.base import BrokerOrder, OrderRequest
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal


class JournalReadingBroker(SimulatedBroker):
    def __init__(self, journal_path: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self._journal_path = journal_path
        self.seen: dict[str, str | None] = {}

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        reader = sqlite3.connect(self._journal_path)
        try:
            row = reader.execute(
                "SELECT status FROM orders WHERE client_order_id=?", (order.client_order_id,)
            ).fetchone()
        finally:
            reader.close()
        self.seen[order.client_order_id] = row[0] if row else None
        await asyncio.sleep(0)  # let other signals interleave, as a real round trip would
        return await super().submit(order)


def _broker(config: GatewayConfig) -> JournalReadingBroker:
    return JournalReadingBroker(
        config.gateway.state_dir / "journal.sqlite3",
        quotes={"AAPL": (199.95, 200.05)},
        tick_s=0.2,
    )


def _signal(n: int) -> Signal:
    return Signal(signal_id=f"d-{n}", strategy="momentum", symbol="AAPL", side="buy", quantity=1)


async def test_one_signal_the_intent_is_committed_before_submit(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    broker = _broker(config)
    service = await make_service(config, broker=broker)
    await service.engine.submit_signal(_signal(1))
    assert list(broker.seen.values()) == ["pending_submit"]


async def test_concurrent_signals_each_intent_committed_before_submit(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(risk={"pre_trade": {"max_orders_per_second": 100000}})
    broker = _broker(config)
    service = await make_service(config, broker=broker)
    await asyncio.gather(*(service.engine.submit_signal(_signal(n)) for n in range(40)))
    assert len(broker.seen) == 40
    assert set(broker.seen.values()) == {"pending_submit"}, broker.seen
