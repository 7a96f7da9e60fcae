"""What the journal remembers during a long outage is bounded: the soft writes it keeps, and the
groups it remembers as lost (a ticket is checked right after its write, never 1000 groups on)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.db import SqliteDriver
from gateway.store.schema import JournalUnavailable
from gateway.store.transactions import BACKLOG_LIMIT, Transactions
from tests.journal_faults import CommitFails


def _memory() -> SqliteDriver:
    return SqliteDriver(sqlite3.connect(":memory:", isolation_level=None), Path(":memory:"))


def test_the_backlog_keeps_the_newest_soft_writes_up_to_its_limit() -> None:
    tx = Transactions(_memory())
    written: list[int] = []

    def replay(n: int) -> bool:
        written.append(n)
        return True

    for n in range(BACKLOG_LIMIT):
        tx.keep(lambda n=n: replay(n))  # type: ignore[misc]
    assert tx.backlog == BACKLOG_LIMIT  # exactly at the limit: nothing dropped
    tx.keep(lambda: replay(BACKLOG_LIMIT))
    assert tx.backlog == BACKLOG_LIMIT  # one beyond: the oldest goes
    tx.flush_backlog()
    assert tx.backlog == 0
    assert written[0] == 1 and written[-1] == BACKLOG_LIMIT and len(written) == BACKLOG_LIMIT


def test_a_full_backlog_says_so_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    tx = Transactions(_memory())
    for _ in range(BACKLOG_LIMIT):
        tx.keep(lambda: True)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # at the limit: no drop
    for _ in range(3):
        tx.keep(lambda: True)
    [line] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "journal backlog full (100000 soft writes kept)" in line.getMessage()


def test_after_the_journal_recovers_a_new_outage_says_so_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tx = Transactions(CommitFails(_memory(), times=1))  # type: ignore[arg-type]
    tx.end(tx.begin(1), defer=True)
    with pytest.raises(JournalUnavailable):
        tx.commit_now()  # the journal fails: an outage begins
    for _ in range(BACKLOG_LIMIT + 1):
        tx.keep(lambda: True)
    tx.flush_backlog()  # the disk takes them again
    tx.recovered()
    assert tx.failure is None
    for _ in range(BACKLOG_LIMIT + 1):
        tx.keep(lambda: True)
    lines = [r for r in caplog.records if "journal backlog full" in r.getMessage()]
    assert len(lines) == 2


def _lose_groups(tx: Transactions, count: int) -> list[int]:
    tickets = []
    for _ in range(count):
        tickets.append(tx.end(tx.begin(1), defer=True))
        with pytest.raises(JournalUnavailable):
            tx.commit_now()
    return tickets


def _lost(tx: Transactions, ticket: int) -> bool:
    try:
        tx.commit_now(ticket)
    except JournalUnavailable:
        return True
    return False


def test_up_to_ten_thousand_lost_groups_are_all_remembered() -> None:
    tx = Transactions(CommitFails(_memory(), times=10**6))  # type: ignore[arg-type]
    tickets = _lose_groups(tx, 10_000)
    assert all(_lost(tx, t) for t in tickets)


def test_beyond_ten_thousand_lost_groups_the_last_thousand_are_remembered() -> None:
    tx = Transactions(CommitFails(_memory(), times=10**6))  # type: ignore[arg-type]
    tickets = _lose_groups(tx, 10_001)
    last = tickets[-1]
    assert _lost(tx, last) and _lost(tx, last - 999)
    assert not _lost(tx, last - 1000)  # forgotten: long past any writer's check
