"""Group commit on the event loop: a waiter's commit happens on the loop's next turn even when
it waits alone, a lost group fails its waiters with their own error, a ticket already lost
stays lost, and a scheduled commit that fails never reaches the loop's error handler."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderRequest
from gateway.store.journal import Journal, JournalUnavailable
from tests.journal_backends import Backend, outage
from tests.journal_faults import CommitFails


class Faults:
    """The journal's connection, with statements starting with a key of ``failing`` failing
    with that key's message while they are in it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.failing: dict[str, str] = {}

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        for prefix, message in self.failing.items():
            if sql.startswith(prefix):
                raise outage(self.db, message)
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def _intent(journal: Journal, n: int) -> int:
    return journal.record_intent(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        order=OrderRequest(client_order_id=f"gw-{n}", symbol="AAPL", side="buy", quantity=1),
        valued_at="200",
        defer=True,
    )


def _committed(path: Path, sql: str) -> list[tuple[Any, ...]]:
    other = sqlite3.connect(path)
    try:
        return list(other.execute(sql))
    finally:
        other.close()


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)  # one turn of the loop each: no wall-clock wait


async def test_a_lone_waiter_is_committed_on_the_loops_next_turn(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    ticket = _intent(journal, 1)
    waiting = asyncio.ensure_future(journal.commit(ticket))
    await _turns()
    assert waiting.done() and waiting.exception() is None
    assert backend.rows(tmp_path / "j.sqlite3", "SELECT signal_id FROM signals") == [("s-1",)]
    journal.close()


async def test_waiting_on_a_ticket_whose_group_was_already_lost_raises(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    ticket = _intent(journal, 1)
    journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
    with pytest.raises(JournalUnavailable):
        journal.commit_now()  # someone else's commit loses the group
    with pytest.raises(JournalUnavailable):
        await journal.commit(ticket)  # its writer must not send the order
    journal.close()


async def test_a_waiter_of_a_lost_group_hears_the_error_of_its_own_commit(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    faults = Faults(journal._db)
    journal._db = journal._tx.db = faults  # type: ignore[assignment]
    faults.failing = {"INSERT INTO events": "database or disk is full"}
    assert journal.record_event("note", {"n": 1}) is False  # an earlier failure, still reported
    faults.failing = {}
    ticket = _intent(journal, 1)
    faults.failing = {"COMMIT": "disk I/O error"}
    with pytest.raises(JournalUnavailable, match="disk I/O error"):
        await journal.commit(ticket)
    faults.failing = {}
    assert journal.signal("s-1") is None
    journal.close()


async def test_a_scheduled_commit_writes_broker_events_on_the_next_turn(
    tmp_path: Path, backend: Backend
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = backend.open(path)
    journal.commit_now(_intent(journal, 1))
    filled = BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=1,
        filled_quantity=1,
        status="filled",
        avg_fill_price="200",
    )
    assert journal.record_order_updates([(filled, None, None)], defer=True)
    journal.schedule_commit()
    await _turns()
    assert backend.rows(path, "SELECT status FROM orders") == [("filled",)]
    journal.close()


async def test_a_scheduled_commit_that_fails_stays_off_the_loops_error_handler(
    tmp_path: Path, backend: Backend
) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        journal = backend.open(tmp_path / "j.sqlite3")
        _intent(journal, 1)
        journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
        journal.schedule_commit()
        await _turns()
        assert errors == []
        assert journal.failure is not None and "disk I/O error" in journal.failure.error
        journal.close()
    finally:
        loop.set_exception_handler(previous)


def _keep_one_event(journal: Journal) -> None:
    """A failed event write, kept in the backlog; the disk takes writes again after it."""
    journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
    assert journal.record_event("note", {"n": 1}) is False
    journal._tx.db = journal._db
    assert journal.backlog == 1


async def test_what_was_kept_is_written_on_the_turn_after_a_write_succeeds(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    _keep_one_event(journal)
    journal.commit_now(_intent(journal, 1))  # a write gets through: the disk takes writes
    assert journal.backlog == 1  # not from inside that write ...
    await _turns()
    assert journal.backlog == 0  # ... but at once after it, with no probe needed
    assert [e["n"] for e in journal.events("note")] == [1]
    journal.close()


def test_without_an_event_loop_what_was_kept_waits_for_the_next_write(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    _keep_one_event(journal)
    journal.commit_now(_intent(journal, 1))  # no loop to flush on: nothing raised
    assert journal.backlog == 1
    journal.record_event("note", {"n": 2})  # the next write queues behind it and flushes
    assert journal.backlog == 0
    assert sorted(e["n"] for e in journal.events("note")) == [1, 2]
    journal.close()


async def test_a_waiter_that_gave_up_does_not_keep_the_others_waiting(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    ticket = _intent(journal, 1)
    gave_up = asyncio.ensure_future(journal.commit(ticket))
    waiting = asyncio.ensure_future(journal.commit(ticket))
    await asyncio.sleep(0)  # both wait; the group's commit is due on the next turn
    gave_up.cancel()
    await _turns()
    assert gave_up.cancelled()
    assert waiting.done() and waiting.exception() is None
    journal.close()
