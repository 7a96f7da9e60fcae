"""What the order lifecycle adds to the simulated account survives reopening its state file:
replaced orders, partial fills (and the ids of the next fills), stops (and whether they
triggered) and one-cancels-other groups; a version 1 file is migrated in place."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import OrderChange, OrderEvent, OrderRequest, OrderStatus
from brokers.errors import BrokerError
from brokers.simulated import SimulatedBroker
from brokers.simulated.state import SCHEMA_VERSION

QUOTES = {"AAPL": (199.95, 200.05)}
Opener = Callable[..., Any]


def order(coid: str, qty: Any = 10, side: str = "buy", **kwargs: Any) -> OrderRequest:
    kwargs.setdefault("time_in_force", "gtc")
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=side, quantity=qty, **kwargs)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "sim_broker.sqlite3"


@pytest.fixture
async def opened() -> AsyncIterator[Opener]:
    brokers: list[SimulatedBroker] = []

    async def open_broker(path: Path, **kwargs: Any) -> SimulatedBroker:
        sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=path, **kwargs)
        await sim.connect()
        brokers.append(sim)
        return sim

    yield open_broker
    for sim in brokers:
        await sim.close()


async def reopen(sim: SimulatedBroker, opened: Opener, **kwargs: Any) -> SimulatedBroker:
    """Abandon ``sim`` (as a crash would: never closed) and open its file afresh."""
    assert sim.state_path is not None
    return await opened(sim.state_path, **kwargs)  # type: ignore[no-any-return]


async def test_a_replaced_order_comes_back_replaced(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit(order("l", order_type="limit", limit_price=190))
    replaced = await first.replace("l", OrderChange(quantity=7, limit_price=191))
    again = await reopen(first, opened)
    assert await again.open_orders() == [replaced]
    assert (await again.account()).buying_power == Decimal(100000) - 7 * Decimal(191)


async def test_a_partly_filled_order_goes_on_with_the_next_fill_id(
    path: Path, opened: Opener
) -> None:
    first: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    placed = await first.submit(order("m"))
    first.set_quote("AAPL", 198.95, 199.05)
    before = await first.get_order("m")
    assert before is not None and before.filled_quantity == 8
    again = await reopen(first, opened, fill_quantity_per_tick=4)
    assert await again.get_order("m") == before
    assert [p.qty for p in await again.positions()] == [Decimal(8)]
    _, [done] = again.set_quote("AAPL", 198.95, 199.05)
    assert (done.status, done.filled_quantity) == (OrderStatus.FILLED, 10)
    assert done.avg_fill_price == (4 * Decimal("200.05") + 6 * Decimal("199.05")) / 10
    fill = None
    async for event in again.events():
        if isinstance(event, OrderEvent) and event.fill is not None:
            fill = event.fill
            break
    assert fill is not None and fill.fill_id == f"{placed.broker_order_id}-3"  # never -1 again


async def test_a_stop_comes_back_with_its_stop_price(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit(order("ss", side="sell", order_type="stop", stop_price=195))
    again = await reopen(first, opened)
    [resting] = await again.open_orders()
    assert (resting.order_type, resting.stop_price) == ("stop", Decimal(195))
    again.set_quote("AAPL", 195.0, 195.1)
    assert [p.qty for p in await again.positions()] == [Decimal(-10)]


async def test_a_triggered_stop_limit_stays_triggered(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit(order("bsl", order_type="stop_limit", stop_price=201, limit_price=201.5))
    first.set_quote("AAPL", 201.9, 202.0)  # triggered, above its limit
    again = await reopen(first, opened)
    again.set_quote(
        "AAPL", 200.8, 200.9
    )  # the ask below the stop: fills only if it stayed triggered
    got = await again.get_order("bsl")
    assert got is not None and got.status is OrderStatus.FILLED


async def test_an_oco_group_comes_back_and_still_cancels(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit(order("entry", time_in_force="day"))
    await first.submit(order("sl", side="sell", order_type="stop", stop_price=195))
    await first.submit(order("tp", side="sell", order_type="limit", limit_price=210))
    group = await first.link_oco(["tp", "sl"])
    assert first.oco_group("tp") == ["sl", "tp"]  # in the order taken, as after a restore
    again = await reopen(first, opened)
    assert again.oco_group("tp") == ["sl", "tp"]
    sl = await again.get_order("sl")
    assert sl is not None and group == f"oco-{sl.broker_order_id}"
    again.set_quote("AAPL", 194.0, 194.1)
    tp = await again.get_order("tp")
    assert tp is not None and tp.status is OrderStatus.CANCELED
    assert await again.positions() == []


_V1_SCHEMA = """
CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), cash TEXT NOT NULL,
    next_id INTEGER NOT NULL);
CREATE TABLE positions (symbol TEXT PRIMARY KEY, qty TEXT NOT NULL, avg_price TEXT NOT NULL);
CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, broker_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, side TEXT NOT NULL, quantity TEXT NOT NULL,
    filled_quantity TEXT NOT NULL, status TEXT NOT NULL, limit_price TEXT,
    avg_fill_price TEXT, order_type TEXT NOT NULL, time_in_force TEXT NOT NULL);
CREATE TABLE submit_counts (client_order_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
INSERT INTO account VALUES (1, '97999.50', 3);
INSERT INTO positions VALUES ('AAPL', '10', '200.05');
INSERT INTO orders VALUES ('old-fill', 'sim-1', 'AAPL', 'buy', '10', '10', 'filled', NULL,
    '200.05', 'market', 'day');
INSERT INTO orders VALUES ('old-rest', 'sim-2', 'AAPL', 'sell', '4', '0', 'accepted', '210',
    NULL, 'limit', 'gtc');
INSERT INTO submit_counts VALUES ('old-fill', 1), ('old-rest', 1);
PRAGMA user_version = 1;
"""


async def test_a_version_1_file_is_migrated_in_place(path: Path, opened: Opener) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(_V1_SCHEMA)
    sim: SimulatedBroker = await opened(path, fill_quantity_per_tick=1)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        fills = dict(db.execute("SELECT client_order_id, fills FROM orders").fetchall())
    assert fills == {"old-fill": 1, "old-rest": 0}
    [resting] = await sim.open_orders()
    assert (resting.client_order_id, resting.stop_price) == ("old-rest", None)
    assert (await sim.account()).cash == Decimal("97999.50")
    new = await sim.submit(order("new", time_in_force="day"))
    assert new.broker_order_id == "sim-3"


def test_a_row_with_unreadable_bookkeeping_is_refused(path: Path) -> None:
    SimulatedBroker(quotes=QUOTES, state_path=path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity,"
            " filled_quantity, status, order_type, time_in_force, fills)"
            " VALUES ('c', 'sim-1', 'AAPL', 'buy', '1', '0', 'accepted', 'market', 'day', -1)"
        )
    with pytest.raises(BrokerError, match="fills") as info:
        SimulatedBroker(quotes=QUOTES, state_path=path)
    assert info.value.code == "bad_state"
