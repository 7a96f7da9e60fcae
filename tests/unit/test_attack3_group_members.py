"""A journal group holding the intents of several signals AND a lone fill (joined without a
savepoint), on both backends, when the group cannot reach the disk.

Guarantees pinned (DESIGN "Durability contract details (v2)"; gateway/store/transactions.py):
- a COMMIT that fails (disk full, I/O error, the PostgreSQL session gone) fails every hard
  member of the group: each ticket's waiter raises JournalUnavailable, no intent is on disk;
- the lone fill is not lost: it is written once the journal writes again, exactly once (a
  second probe or a repeated report adds no row);
- when the fill's own stream event fails inside the open group, the fill row never reaches the
  disk without its event, and a ticket whose waiter did not raise has its rows on disk
  (never "committed" answered for a group that was rolled back)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, Fill, OrderRequest
from gateway.store.journal import Journal, JournalUnavailable
from tests.journal_backends import Backend, outage


class Failing:
    """The journal's driver; statements starting with a key of ``failing`` fail (an outage),
    after a ROLLBACK when ``rollback`` (as SQLite does on a full disk, PostgreSQL always)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.failing: set[str] = set()
        self.rollback = True

    def execute(self, sql: str, *args: object) -> Any:
        if any(sql.startswith(p) for p in self.failing):
            if self.rollback and self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise outage(self.db, "database or disk is full")
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


FILLED = BrokerOrder(
    client_order_id="gw-0",
    broker_order_id="b-0",
    symbol="AAPL",
    side="buy",
    quantity=1,
    filled_quantity=1,
    status="filled",
    avg_fill_price="200",
)
FILL = Fill(
    client_order_id="gw-0",
    broker_order_id="b-0",
    symbol="AAPL",
    side="buy",
    quantity=1,
    price=200,
    ts=datetime(2026, 1, 2, tzinfo=UTC),
    fill_id="f-1",
)


def _filled_order_journaled(journal: Journal) -> None:
    journal.commit_now(_intent(journal, 0))
    # The decision wrote the order's filled state: the fill event after it is a lone fill.
    assert journal.record_order_updates([(FILLED, None, None)])
    journal.commit_now()


def _install(journal: Journal) -> Failing:
    failing = Failing(journal._db)
    journal._db = journal._tx.db = failing  # type: ignore[assignment]
    journal._orders.forget("gw-0")  # type: ignore[attr-defined]
    return failing


async def _outcomes(journal: Journal, tickets: list[int]) -> list[BaseException | None]:
    results = await asyncio.gather(*(journal.commit(t) for t in tickets), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


async def test_a_failed_commit_fails_every_intent_and_keeps_the_lone_fill_for_later(
    tmp_path: Path, backend: Backend
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = backend.open(path)
    _filled_order_journaled(journal)
    failing = _install(journal)
    tickets = [_intent(journal, n) for n in (1, 2, 3)]
    assert journal.record_order_updates([(FILLED, FILL, None)], defer=True)  # the lone fill
    assert len(set(tickets)) == 1  # one group
    failing.failing = {"COMMIT"}
    outcomes = await _outcomes(journal, tickets)
    assert all(isinstance(o, JournalUnavailable) for o in outcomes), outcomes
    assert journal._tx.failure is not None  # reported: the gateway halts journal_failure
    assert backend.rows(path, "SELECT signal_id FROM signals ORDER BY signal_id") == [("s-0",)]
    assert backend.rows(path, "SELECT fill_id FROM fills") == []
    failing.failing = set()
    assert journal.probe()
    assert journal.probe()
    assert backend.rows(path, "SELECT fill_id FROM fills") == [("f-1",)]
    fills_in_stream = backend.rows(path, "SELECT count(*) FROM stream WHERE type='fill'")
    assert fills_in_stream == [(1,)]
    journal.close()


@pytest.mark.parametrize("rollback", [True, False])
async def test_the_lone_fills_event_failing_inside_a_group_of_intents(
    tmp_path: Path, backend: Backend, rollback: bool
) -> None:
    if backend.postgres and not rollback:
        pytest.skip("PostgreSQL always aborts a transaction a statement failed in")
    path = tmp_path / "j.sqlite3"
    journal = backend.open(path)
    _filled_order_journaled(journal)
    failing = _install(journal)
    failing.rollback = rollback
    tickets = [_intent(journal, n) for n in (1, 2)]
    failing.failing = {"INSERT INTO stream"}
    assert journal.record_order_updates([(FILLED, FILL, None)], defer=True) is False
    failing.failing = set()
    tickets.append(_intent(journal, 3))
    outcomes = await _outcomes(journal, tickets)
    on_disk = {r[0] for r in backend.rows(path, "SELECT signal_id FROM signals")}
    for n, outcome in zip((1, 2, 3), outcomes, strict=True):
        if outcome is None:
            assert f"s-{n}" in on_disk, (n, "answered committed but not on disk")
        else:
            assert isinstance(outcome, JournalUnavailable), outcome
            assert f"s-{n}" not in on_disk, n
    # Never a fill row without its event (the backlog may have written both already).
    fills = backend.rows(path, "SELECT count(*) FROM fills")
    assert fills == backend.rows(path, "SELECT count(*) FROM stream WHERE type='fill'")
    assert journal._tx.failure is not None
    assert journal.probe()
    assert backend.rows(path, "SELECT fill_id FROM fills") == [("f-1",)]
    assert backend.rows(path, "SELECT count(*) FROM stream WHERE type='fill'") == [(1,)]
    journal.close()


async def test_a_pg_session_terminated_while_intents_wait_for_the_group_commit(
    tmp_path: Path, backend: Backend
) -> None:
    """A deposed active (its session, the one holding the advisory lock, is terminated) while
    signals' intents wait for the loop's group commit: none of them is answered committed, so
    none is sent; nothing reaches the shared journal; the failure is reported."""
    if not backend.postgres:
        pytest.skip("the pair's journal only")
    import psycopg

    path = tmp_path / "j.sqlite3"
    journal = backend.open(path)
    tickets = [_intent(journal, n) for n in (1, 2, 3)]
    pid = journal._db.conn.info.backend_pid  # type: ignore[attr-defined]
    assert backend.dsn is not None
    with psycopg.connect(backend.dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    outcomes = await _outcomes(journal, tickets)
    assert all(isinstance(o, JournalUnavailable) for o in outcomes), outcomes
    assert journal._tx.failure is not None
    assert backend.rows(path, "SELECT signal_id FROM signals") == []
    # A later intent cannot be committed either: nothing reconnects the deposed session.
    with pytest.raises(JournalUnavailable):
        await journal.commit(_intent(journal, 4))
    journal.close()
