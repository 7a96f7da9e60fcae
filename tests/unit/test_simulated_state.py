"""The simulated paper account survives a restart: cash, positions, every order (resting ones
resting), the id counter and the submit counts live in SQLite, each change committed before
the call that made it returns; an unreadable file is refused, never replaced."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import OrderRequest
from brokers.errors import BrokerError
from brokers.simulated import SimulatedBroker
from brokers.simulated.faults import Faults
from brokers.simulated.state import SCHEMA_VERSION
from gateway.config import ConfigError, GatewayConfig
from gateway.service import build_broker

QUOTES = {"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)}


def limit(coid: str, price: float, tif: str = "gtc", side: str = "buy") -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side=side,
        quantity=5,
        order_type="limit",
        limit_price=price,
        time_in_force=tif,
    )


def market(coid: str, qty: int, side: str = "buy", symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, quantity=qty)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sim_broker.sqlite3"


@pytest.fixture
async def opened() -> AsyncIterator[Callable[..., Any]]:
    brokers: list[SimulatedBroker] = []

    async def open_broker(path: Path | None, **kwargs: Any) -> SimulatedBroker:
        sim = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=path, **kwargs)
        await sim.connect()
        brokers.append(sim)
        return sim

    yield open_broker
    for sim in brokers:
        await sim.close()


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What another process reading the file sees now (the broker keeps its own connection)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def test_the_account_comes_back_after_reopening_the_file(
    path: Path, opened: Callable[..., Any]
) -> None:
    first: SimulatedBroker = await opened(path)
    await first.submit(market("buy-aapl", 10))
    await first.submit(market("buy-msft", 4, symbol="MSFT"))
    await first.submit(market("sell-aapl", 3, side="sell"))
    await first.submit(limit("gtc-rest", 150))
    await first.submit(limit("day-rest", 151, tif="day"))
    await first.cancel("day-rest")
    await first.submit(limit("day-rest-2", 149, tif="day"))
    before = (await first.account(), await first.positions(), await first.open_orders())
    every = {c: await first.get_order(c) for c in first.submit_counts}
    await first.close()

    # A different initial_cash proves the cash is the file's, not a fresh account's.
    again: SimulatedBroker = await opened(path, initial_cash=5)
    assert (await again.account(), await again.positions(), await again.open_orders()) == before
    assert before[0].cash == Decimal(100000) - 10 * Decimal("200.05") - 4 * Decimal(
        "410.1"
    ) + 3 * Decimal("199.95")
    assert [o.client_order_id for o in before[2]] == ["gtc-rest", "day-rest-2"]
    assert {c: await again.get_order(c) for c in every} == every
    assert every["day-rest"] is not None and every["day-rest"].status == "canceled"
    assert dict(again.submit_counts) == {c: 1 for c in every}
    # The next order gets a new id: sim-1..sim-6 were handed out before the restart.
    nxt = await again.submit(market("after", 1))
    assert nxt.broker_order_id == "sim-7"
    # A resting order keeps resting after the restart, and fills when the market reaches it.
    _, fills = again.set_quote("AAPL", 149.9, 150.0)
    assert [o.client_order_id for o in fills] == ["gtc-rest"]
    assert (await again.get_order("gtc-rest")).status == "filled"  # type: ignore[union-attr]


async def test_broker_ids_are_never_handed_out_twice_across_restarts(
    path: Path, opened: Callable[..., Any]
) -> None:
    ids = []
    for run in range(3):
        sim: SimulatedBroker = await opened(path)
        for i in range(2):
            ids.append((await sim.submit(market(f"r{run}-{i}", 1))).broker_order_id)
        with pytest.raises(BrokerError):  # a refusal hands out no id
            await sim.submit(market(f"r{run}-too-big", 10**9))
        await sim.close()
    assert ids == [f"sim-{n}" for n in range(1, 7)]
    assert read(path, "SELECT next_id FROM account") == [(7,)]


async def test_each_change_is_committed_before_the_call_returns(
    path: Path, opened: Callable[..., Any]
) -> None:
    sim: SimulatedBroker = await opened(path)
    placed = await sim.submit(limit("rest", 150))
    # Read through another connection while the broker is still open: already on disk.
    assert read(path, "SELECT broker_order_id, status FROM orders") == [
        (placed.broker_order_id, "accepted")
    ]
    assert read(path, "SELECT * FROM submit_counts") == [("rest", 1)]
    sim.set_quote("AAPL", 149.9, 150.0)  # the market reaches the resting order
    assert read(path, "SELECT status, avg_fill_price FROM orders") == [("filled", "150.0")]
    assert read(path, "SELECT symbol, qty, avg_price FROM positions") == [("AAPL", "5", "150.0")]
    assert read(path, "SELECT cash FROM account") == [("99250.0",)]
    await sim.submit(market("close", 5, side="sell"))
    assert read(path, "SELECT * FROM positions") == []  # a flat symbol has no row
    await sim.submit(limit("rest-2", 140))
    await sim.cancel_all()
    assert read(path, "SELECT status FROM orders WHERE client_order_id = 'rest-2'") == [
        ("canceled",)
    ]


async def test_concurrent_submits_under_latency_are_all_on_disk_with_their_own_ids(
    path: Path, opened: Callable[..., Any]
) -> None:
    sim: SimulatedBroker = await opened(path, faults=Faults(latency_ms=30))
    requests = [market(f"c-{i}", 1) for i in range(25)] + [limit(f"l-{i}", 150) for i in range(5)]
    placed = await asyncio.wait_for(asyncio.gather(*(sim.submit(r) for r in requests)), timeout=20)
    await sim.close()
    ids = {p.broker_order_id for p in placed}
    assert ids == {f"sim-{n}" for n in range(1, 31)}
    assert len(read(path, "SELECT DISTINCT broker_order_id FROM orders")) == 30
    assert read(path, "SELECT qty FROM positions WHERE symbol = 'AAPL'") == [("25",)]
    assert read(path, "SELECT next_id FROM account") == [(31,)]
    again: SimulatedBroker = await opened(path)
    assert len(await again.open_orders()) == 5
    assert sum(again.submit_counts.values()) == 30


async def test_the_file_is_a_versioned_sqlite_database_in_wal_mode(
    path: Path, opened: Callable[..., Any]
) -> None:
    await opened(path)
    assert read(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert read(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {t for (t,) in read(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"account", "positions", "orders", "submit_counts", "executions"}


async def test_without_a_state_path_nothing_is_written(
    tmp_path: Path, opened: Callable[..., Any]
) -> None:
    sim: SimulatedBroker = await opened(None)
    await sim.submit(market("m", 1))
    assert sim.state_path is None
    assert not await asyncio.to_thread(lambda: any(tmp_path.glob("**/*")))


# --- unreadable files --------------------------------------------------------------------------


def _refused(path: Path, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(BrokerError, match=match) as info:
        SimulatedBroker(quotes=QUOTES, state_path=path)
    assert info.value.code == "bad_state"
    assert str(path) in str(info.value)
    assert path.read_bytes() == before  # left as it was: never a silent fresh account


def test_a_corrupt_file_is_refused_naming_it(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    _refused(path, "unreadable")


def test_a_newer_schema_is_refused(path: Path) -> None:
    SimulatedBroker(state_path=path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    _refused(path, f"schema version {SCHEMA_VERSION + 1} is newer than this broker's")


def test_another_programs_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    _refused(path, "not a simulated broker state file")


def test_a_row_that_cannot_be_read_is_refused(path: Path) -> None:
    SimulatedBroker(state_path=path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE account SET cash = 'lots'")
    _refused(path, "unreadable")


def test_an_order_row_that_cannot_be_read_is_refused(path: Path) -> None:
    SimulatedBroker(state_path=path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, quantity,"
            " filled_quantity, status, limit_price, avg_fill_price, order_type, time_in_force)"
            " VALUES ('c', 'sim-1', 'AAPL', 'hold', '1', '0', 'accepted', NULL, NULL, 'market',"
            " 'day')"
        )
    _refused(path, "side")


# --- where the file lives ----------------------------------------------------------------------


def test_build_broker_keeps_the_account_in_state_dir_by_default(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config()
    sim = build_broker(config, {})
    assert isinstance(sim, SimulatedBroker)
    assert sim.state_path == config.gateway.state_dir / "sim_broker.sqlite3"
    assert sim.state_path.exists()


def test_a_relative_state_file_resolves_against_the_config_directory(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config(gateway={"brokers": {"simulated": {"state_file": "shared/sim.db"}}})
    sim = build_broker(config, {})
    assert isinstance(sim, SimulatedBroker)
    assert config.source is not None
    assert sim.state_path == config.source.parent / "shared" / "sim.db"


def test_persist_false_keeps_the_account_in_memory(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config(gateway={"brokers": {"simulated": {"persist": False}}})
    sim = build_broker(config, {})
    assert isinstance(sim, SimulatedBroker)
    assert sim.state_path is None
    assert not (config.gateway.state_dir / "sim_broker.sqlite3").exists()


def test_persist_false_with_a_state_file_is_a_config_error(
    make_config: Callable[..., GatewayConfig],
) -> None:
    with pytest.raises(ConfigError, match="state_file"):
        make_config(gateway={"brokers": {"simulated": {"persist": False, "state_file": "x.db"}}})


def test_faults_from_the_config_are_in_force_at_start(
    make_config: Callable[..., GatewayConfig],
) -> None:
    config = make_config(gateway={"brokers": {"simulated": {"faults": {"reject_submits": 2}}}})
    sim = build_broker(config, {})
    assert isinstance(sim, SimulatedBroker)
    assert sim.faults == Faults(reject_submits=2)


def test_an_unknown_fault_in_the_config_is_an_error_naming_it(
    make_config: Callable[..., GatewayConfig],
) -> None:
    with pytest.raises(ConfigError, match=r"brokers\.simulated\.faults\.latency"):
        make_config(gateway={"brokers": {"simulated": {"faults": {"latency": 5}}}})
