"""The simulated broker tells the fills an order had, again, with the ids its events carried:
after a restart from its state file (a kill -9 of the gateway loses events, never these), in
memory without a file, and nothing for a file from before executions were kept (never made
up)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import ExecutionSource, Fill, OrderEvent, OrderRequest
from brokers.errors import BrokerError
from brokers.retrying import RetryingBroker
from brokers.simulated import SimulatedBroker
from brokers.simulated.state import SCHEMA_VERSION
from tests.unit.test_sim_lifecycle_persist import _V1_SCHEMA

QUOTES = {"AAPL": (199.95, 200.05)}
Opener = Callable[..., Any]


def order(coid: str, qty: Any = 10, side: str = "buy", **kwargs: Any) -> OrderRequest:
    kwargs.setdefault("time_in_force", "gtc")
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty, **kwargs)


@pytest.fixture
async def opened() -> AsyncIterator[Opener]:
    brokers: list[SimulatedBroker] = []

    async def open_broker(path: Path | None, **kwargs: Any) -> SimulatedBroker:
        sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=path, **kwargs)
        await sim.connect()
        brokers.append(sim)
        return sim

    yield open_broker
    for sim in brokers:
        await sim.close()


def _fills_published(sim: SimulatedBroker) -> list[Fill]:
    queue = sim._events  # what the gateway's event loop would have read
    fills = []
    while not queue.empty():
        event = queue.get_nowait()
        if isinstance(event, OrderEvent) and event.fill is not None:
            fills.append(event.fill)
    return fills


async def test_a_restart_tells_every_fill_as_its_event_carried_it(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "sim.sqlite3"
    sim: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    await sim.submit(order("mkt", 10))  # 4 now
    sim.set_quote("AAPL", 199.0, 199.1)  # 8 at a lower ask
    await sim.submit(order("rest", 3, side="sell", order_type="limit", limit_price=201))
    sim.set_quote("AAPL", 201.0, 201.1)  # mkt's last 2; rest fills 3
    published = _fills_published(sim)
    assert [f.fill_id for f in published] == ["sim-1-1", "sim-1-2", "sim-1-3", "sim-2-1"]
    await sim.close()

    again: SimulatedBroker = await opened(path)
    told = await again.executions(["mkt", "rest", "never-sent"])
    assert told == published  # ids, quantities, prices and times exactly as the events had them
    assert sum(f.quantity for f in told if f.client_order_id == "mkt") == Decimal(10)
    assert await again.executions(["rest"]) == published[-1:]
    assert await again.executions([]) == []


async def test_without_a_state_file_the_executions_are_kept_in_memory(opened: Opener) -> None:
    sim: SimulatedBroker = await opened(None)
    await sim.submit(order("a", 5))
    await sim.submit(order("b", 2, side="sell"))
    published = _fills_published(sim)
    assert await sim.executions(["b", "a"]) == published
    assert isinstance(sim, ExecutionSource)


async def test_the_retry_layer_passes_it_through_and_says_when_a_broker_cannot(
    opened: Opener,
) -> None:
    sim: SimulatedBroker = await opened(None)
    await sim.submit(order("a", 5))
    assert [f.fill_id for f in await RetryingBroker(sim).executions(["a"])] == ["sim-1-1"]

    class NoExecutions:
        name = "bare"

    with pytest.raises(BrokerError) as raised:
        await RetryingBroker(NoExecutions()).executions(["a"])  # type: ignore[arg-type]
    assert raised.value.code == "executions_unsupported"


async def test_fills_from_before_executions_were_kept_are_not_made_up(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(_V1_SCHEMA)  # 'old-fill' filled 10, no execution recorded then
    sim: SimulatedBroker = await opened(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert await sim.executions(["old-fill"]) == []
    await sim.submit(order("new", 1))
    assert [f.fill_id for f in await sim.executions(["old-fill", "new"])] == ["sim-3-1"]


async def test_a_closed_broker_does_not_answer(tmp_path: Path, opened: Opener) -> None:
    sim: SimulatedBroker = await opened(tmp_path / "sim.sqlite3")
    await sim.close()
    with pytest.raises(BrokerError):
        await sim.executions(["a"])
