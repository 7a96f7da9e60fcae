"""The simulated broker's submits share commits (group commit) when their caller allows it, and
still answer only once their order is on disk; a commit that fails fails every submit of its
group (nothing acknowledged), and the broker writes again afterwards. A caller that does not
allow it sees each submit committed at once, without the loop turning."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from brokers.base import SHARED_COMMIT, OrderEvent, OrderRequest
from brokers.errors import BrokerUnavailable
from brokers.simulated import SimulatedBroker

QUOTES = {"AAPL": (199.95, 200.05)}


def market(coid: str) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side="buy", quantity=1)


def on_disk(path: Path) -> list[str]:
    other = sqlite3.connect(path)
    try:
        return [r[0] for r in other.execute("SELECT client_order_id FROM orders ORDER BY rowid")]
    finally:
        other.close()


class Statements:
    """The state file's connection, counting COMMITs and failing them while ``failing``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.commits = 0
        self.failing = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            if self.failing:
                self.db.execute("ROLLBACK")  # as SQLite does on a full disk
                raise sqlite3.OperationalError("database or disk is full")
            self.commits += 1
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.fixture
async def sim(tmp_path: Path) -> Any:
    broker = SimulatedBroker(quotes=QUOTES, tick_s=3600, state_path=tmp_path / "sim.sqlite3")
    await broker.connect()
    statements = Statements(broker._state._db)  # type: ignore[union-attr]
    broker._state._db = statements  # type: ignore[union-attr,assignment]
    yield broker, statements
    broker._state._db = statements.db  # type: ignore[union-attr]
    await broker.close()


async def test_concurrent_submits_share_one_commit_and_each_answer_is_on_disk(
    sim: Any, tmp_path: Path
) -> None:
    broker, statements = sim
    SHARED_COMMIT.set(True)  # as the gateway's pipeline calls it (this test's context)
    placed = await asyncio.gather(*(broker.submit(market(f"c-{n}")) for n in range(8)))
    assert [o.client_order_id for o in placed] == [f"c-{n}" for n in range(8)]
    assert statements.commits == 1
    assert on_disk(tmp_path / "sim.sqlite3") == [f"c-{n}" for n in range(8)]


async def test_a_lone_submit_is_on_disk_when_it_answers(sim: Any, tmp_path: Path) -> None:
    broker, _ = sim
    SHARED_COMMIT.set(True)  # as the gateway's pipeline calls it (this test's context)
    await broker.submit(market("alone"))
    assert on_disk(tmp_path / "sim.sqlite3") == ["alone"]


async def test_a_failed_commit_fails_every_submit_of_its_group_then_writes_again(
    sim: Any, tmp_path: Path
) -> None:
    broker, statements = sim
    SHARED_COMMIT.set(True)  # as the gateway's pipeline calls it (this test's context)
    statements.failing = True
    answers = await asyncio.gather(
        *(broker.submit(market(f"lost-{n}")) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(a, BrokerUnavailable) and a.code == "state_write" for a in answers)
    assert on_disk(tmp_path / "sim.sqlite3") == []
    statements.failing = False
    await broker.submit(market("after"))
    assert on_disk(tmp_path / "sim.sqlite3") == ["after"]


async def test_a_fill_event_is_read_only_after_the_commit_of_its_order(
    sim: Any, tmp_path: Path
) -> None:
    broker, _ = sim
    SHARED_COMMIT.set(True)  # as the gateway's pipeline calls it (this test's context)
    seen: list[list[str]] = []

    async def reader() -> None:
        async for event in broker.events():
            if isinstance(event, OrderEvent) and event.fill is not None:
                seen.append(on_disk(tmp_path / "sim.sqlite3"))
                return

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    await broker.submit(market("filled"))
    await asyncio.wait_for(task, 5)
    assert seen == [["filled"]]


async def test_unshared_submits_commit_at_once_and_let_no_other_task_run(
    sim: Any, tmp_path: Path
) -> None:
    broker, statements = sim
    ran: list[str] = []
    SHARED_COMMIT.set(False)  # this test's context only
    other = asyncio.get_running_loop().call_soon(ran.append, "other")
    await broker.submit(market("one"))
    await broker.submit(market("two"))
    assert ran == [] and statements.commits == 2
    assert on_disk(tmp_path / "sim.sqlite3") == ["one", "two"]
    other.cancel()
