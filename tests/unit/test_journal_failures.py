"""A journal write that fails (disk full) leaves SQLite and the journal consistent, tells every
writer whose group was lost, keeps soft writes, and writes again once the disk takes writes.

``PRAGMA max_page_count`` makes SQLite answer SQLITE_FULL exactly as a full disk does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from brokers.base import OrderRequest
from gateway.store.journal import Journal, JournalUnavailable, WriteFailure
from tests.journal_backends import Backend, fill_up, free
from tests.journal_faults import CommitFails, install_statement_fails


def _intent(journal: Journal, n: int, *, defer: bool = True) -> int:
    return journal.record_intent(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{" + "x" * 2000 + "}",
        strategy="momentum",
        symbol="AAPL",
        order=OrderRequest(client_order_id=f"gw-{n}", symbol="AAPL", side="buy", quantity=1),
        valued_at="200",
        defer=defer,
    )


def _fill_up(journal: Journal) -> None:
    """Cap the storage at its current size: the next page it needs is refused."""
    fill_up(journal)


def _free(journal: Journal) -> None:
    free(journal)


def test_a_full_disk_fails_the_write_and_the_journal_recovers(
    tmp_path: Path, backend: Backend
) -> None:
    failures: list[WriteFailure] = []
    recovered: list[bool] = []
    journal = backend.open(
        tmp_path / "j.sqlite3",
        on_failure=failures.append,
        on_recovered=lambda: recovered.append(True),
    )
    journal.commit_now(_intent(journal, 0))
    _fill_up(journal)
    with pytest.raises(JournalUnavailable):
        for n in range(1, 200):
            journal.commit_now(_intent(journal, n))
    assert len(failures) == 1 and "full" in failures[0].error
    assert journal.failure is not None
    # The connection is not left inside a dead transaction: a later commit is not refused
    # for that reason (the bug: "cannot commit - no transaction is active" forever after).
    assert not journal._db.in_transaction
    _free(journal)
    journal.commit_now(_intent(journal, 500))  # a write gets through ...
    assert journal.failure is not None  # ... but only a probe declares the journal writable
    assert journal.probe()
    assert journal.failure is None and recovered == [True]
    assert journal.signal("s-500") is not None
    journal.close()


def test_a_lost_group_fails_every_ticket_in_it(tmp_path: Path, backend: Backend) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    journal.commit_now(_intent(journal, 0))
    first = _intent(journal, 1)  # joins the open group
    _fill_up(journal)
    with pytest.raises(JournalUnavailable):
        for n in range(2, 200):
            _intent(journal, n)
        journal.commit_now()
    # The first intent's group never reached the disk: its writer must not send the order.
    with pytest.raises(JournalUnavailable):
        journal.commit_now(first)
    _free(journal)
    assert journal.signal("s-1") is None
    journal.close()


async def test_a_waiter_of_a_group_commit_hears_exactly_whether_its_write_landed(
    tmp_path: Path, backend: Backend
) -> None:
    """The guarantee the engine sends orders on: commit(ticket) returns only if the write of
    that ticket is in the journal, and raises if it is not."""
    journal = backend.open(tmp_path / "j.sqlite3")
    journal.commit_now(_intent(journal, 0))
    _fill_up(journal)
    tickets: dict[int, int] = {}
    refused = 0
    for n in range(1, 80):
        try:
            tickets[n] = _intent(journal, n)
        except JournalUnavailable:
            refused += 1
    assert refused  # the disk filled up while the group was open
    outcomes = await asyncio.gather(
        *(journal.commit(t) for t in tickets.values()), return_exceptions=True
    )
    _free(journal)
    for (n, _), outcome in zip(tickets.items(), outcomes, strict=True):
        landed = journal.signal(f"s-{n}") is not None
        assert landed == (outcome is None), (n, outcome)
    journal.close()


def test_soft_writes_are_kept_and_written_once_the_disk_takes_writes(
    tmp_path: Path, backend: Backend
) -> None:
    journal = backend.open(tmp_path / "j.sqlite3")
    _fill_up(journal)
    for n in range(300):
        journal.record_event("note", {"n": n, "pad": "y" * 500})  # never raises
        journal.put("state", n)
    assert journal.backlog > 0  # some could not be written (and nothing raised)
    _free(journal)
    assert journal.probe()
    assert journal.backlog == 0
    notes = journal.events("note", limit=1000)
    assert sorted(e["n"] for e in notes) == list(range(300))
    assert journal.get("state") == 299  # in order: the last value wins
    journal.close()


def test_a_damaged_page_is_refused_at_open(tmp_path: Path, backend: Backend) -> None:
    from gateway.store.schema import JournalError

    if backend.postgres:
        pytest.skip("SQLite's integrity check of its file: PostgreSQL checks its own pages")

    path = tmp_path / "j.sqlite3"
    journal = backend.open(path)
    for n in range(300):
        journal.record_event("note", {"n": n})  # small rows: b-tree pages, no overflow
    journal.close()
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + 800] = b"\xa5" * 800  # garbage over a middle page's header
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="integrity check"):
        backend.open(path)


def test_the_soft_writes_of_a_group_lost_at_commit_are_written_later(
    tmp_path: Path, backend: Backend
) -> None:
    from brokers.base import BrokerOrder

    journal = backend.open(tmp_path / "j.sqlite3")
    journal.commit_now(_intent(journal, 1))
    journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
    ticket = _intent(journal, 2)  # a hard write opens the group
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
    journal.record_order_updates([(filled, None, None)], defer=True)  # a fill joins the group
    with pytest.raises(JournalUnavailable):
        journal.commit_now(ticket)  # the commit fails: the intent did not land ...
    assert journal.signal("s-2") is None
    assert journal.backlog == 1  # ... and the fill is kept, not forgotten
    journal.record_event("note", {"n": 1})  # queued behind it: the order holds
    assert journal.probe()
    assert [o.status for o in journal.orders() if o.client_order_id == "gw-1"] == ["filled"]
    assert [e["n"] for e in journal.events("note")] == [1]
    journal.close()


def test_an_intent_that_cannot_be_undone_in_its_group_takes_the_group_with_it(
    tmp_path: Path, backend: Backend
) -> None:
    # The intent joins an open group; its order row fails, and so does deleting its signal
    # row (a full disk may refuse that too). The signal row must not reach the disk without
    # its order: a replay would trip over it, and a restart would read an intent with no order.
    journal = backend.open(tmp_path / "j.sqlite3")
    journal.commit_now(_intent(journal, 0))
    first = _intent(journal, 1)  # opens a group
    install_statement_fails(journal, failing=("INSERT INTO orders", "DELETE FROM signals"))
    with pytest.raises(JournalUnavailable):
        _intent(journal, 2)  # joins it and fails
    journal.commit_now()
    assert journal.signal("s-2") is None
    with pytest.raises(JournalUnavailable):
        journal.commit_now(first)  # lost with the group: its order is never sent
    journal.close()
