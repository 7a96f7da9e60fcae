"""Brackets survive reopening the simulated broker's state file: held legs stay held (and still
start working when the entry fills), working legs keep working one-cancels-other; a version 2
file (before brackets) is migrated in place; an unreadable leg row is refused."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import OrderRequest, OrderStatus
from brokers.errors import BrokerError
from brokers.simulated import SimulatedBroker
from brokers.simulated.state import SCHEMA_VERSION

QUOTES = {"AAPL": (199.95, 200.05)}
Opener = Callable[..., Any]
ACCEPTED, FILLED, CANCELED, NEW = (
    OrderStatus.ACCEPTED,
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.NEW,
)


def req(coid: str, side: str = "buy", qty: Any = 10, **kwargs: Any) -> OrderRequest:
    fields: dict[str, Any] = {"symbol": "AAPL", "time_in_force": "gtc", **kwargs}
    return OrderRequest(client_order_id=coid, side=side, quantity=qty, **fields)


STOP = req("sl", "sell", order_type="stop", stop_price=195)
TARGET = req("tp", "sell", order_type="limit", limit_price=210)


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


async def states(sim: SimulatedBroker) -> list[tuple[OrderStatus, Decimal, Decimal]]:
    found = await sim.adopt_bracket("entry", "sl", "tp")
    return [(o.status, o.quantity, o.filled_quantity) for o in found]


async def test_held_legs_come_back_held(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path)
    placed = await first.submit_bracket(
        req("entry", order_type="limit", limit_price=199), STOP, TARGET
    )
    again: SimulatedBroker = await opened(path)  # the first abandoned, as by a crash
    assert await again.adopt_bracket("entry", "sl", "tp") == placed
    again.set_quote("AAPL", 210.5, 210.6)  # through the held take profit: nothing fills
    assert await states(again) == [(ACCEPTED, 10, 0), (NEW, 10, 0), (NEW, 10, 0)]
    again.set_quote("AAPL", 198.9, 199.0)  # the entry fills: its legs start working
    assert await states(again) == [(FILLED, 10, 10), (ACCEPTED, 10, 0), (ACCEPTED, 10, 0)]
    assert again.oco_group("sl") == ["sl", "tp"]


async def test_working_legs_come_back_working(path: Path, opened: Opener) -> None:
    first: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    await first.submit_bracket(req("entry", order_type="limit", limit_price=201), STOP, TARGET)
    again: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    assert await states(again) == [
        (OrderStatus.PARTIALLY_FILLED, 10, 4),
        (ACCEPTED, 4, 0),
        (ACCEPTED, 4, 0),
    ]
    again.set_quote("AAPL", 199.95, 200.05)  # the entry goes on filling: its legs follow
    assert [q for _, q, _ in await states(again)] == [10, 8, 8]
    third: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    # through the stop: the entry (ranked first) fills its last 2, then the stop sells 4
    third.set_quote("AAPL", 194.9, 195.0)
    assert await states(third) == [
        (FILLED, 10, 10),
        (OrderStatus.PARTIALLY_FILLED, 10, 4),
        (ACCEPTED, 6, 0),
    ]
    fourth: SimulatedBroker = await opened(path, fill_quantity_per_tick=4)
    fourth.set_quote("AAPL", 194.9, 195.0)
    fourth.set_quote("AAPL", 194.9, 195.0)
    assert await states(fourth) == [(FILLED, 10, 10), (FILLED, 10, 10), (CANCELED, 2, 0)]
    assert await fourth.positions() == []


async def test_a_cancelled_unfilled_entry_comes_back_with_its_legs_cancelled(
    path: Path, opened: Opener
) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit_bracket(req("entry", order_type="limit", limit_price=199), STOP, TARGET)
    await first.cancel("entry")
    again: SimulatedBroker = await opened(path)
    assert await states(again) == [(CANCELED, 10, 0)] * 3
    assert await again.open_orders() == []


_V2_ROWS = """
INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity, filled_quantity,
    status, limit_price, order_type, time_in_force, fills)
    VALUES ('old', 'sim-1', 'AAPL', 'sell', '4', '0', 'accepted', '210', 'limit', 'gtc', 0);
UPDATE account SET next_id = 2;
"""


async def test_a_version_2_file_is_migrated_in_place(path: Path, opened: Opener) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        schema = _v2_schema()
        db.executescript(schema + _V2_ROWS + "PRAGMA user_version = 2;")
    sim: SimulatedBroker = await opened(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        row = db.execute("SELECT parent_id, leg_role FROM orders").fetchone()
    assert row == (None, None)
    [old] = await sim.open_orders()
    assert old.client_order_id == "old"
    placed = await sim.submit_bracket(req("entry"), STOP, None)
    assert [o.broker_order_id for o in placed] == ["sim-2", "sim-3"]


def _v2_schema() -> str:
    """Version 2's schema: today's without the bracket columns, and its account row."""
    from brokers.simulated import state

    schema = state._SCHEMA.replace(",\n    parent_id TEXT,\n    leg_role TEXT", "")
    assert "parent_id" not in schema
    return schema + "INSERT INTO account VALUES (1, '100000', 1);"


@pytest.mark.parametrize(
    ("parent", "role"),
    [("entry", None), (None, "stop_loss"), ("entry", "trailing"), (b"entry", "stop_loss")],
)
def test_a_row_with_an_unreadable_leg_is_refused(path: Path, parent: Any, role: Any) -> None:
    SimulatedBroker(quotes=QUOTES, state_path=path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity,"
            " filled_quantity, status, order_type, time_in_force, parent_id, leg_role)"
            " VALUES ('c', 'sim-1', 'AAPL', 'sell', '1', '0', 'new', 'market', 'day', ?, ?)",
            (parent, role),
        )
    with pytest.raises(BrokerError, match="leg_role") as info:
        SimulatedBroker(quotes=QUOTES, state_path=path)
    assert info.value.code == "bad_state"
