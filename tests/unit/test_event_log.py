"""The event log read back: only committed rows (never the writer's open group, which could
still roll back), in order, paged, and filtered to a token's strategies plus every state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.events import EventLog
from gateway.store.journal import Journal, JournalUnavailable


def _refusal(journal: Journal, n: int, strategy: str = "momentum", defer: bool = False) -> int:
    return journal.record_refusal(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{}",
        strategy=strategy,
        symbol="AAPL",
        decision_json=f'{{"signal_id":"s-{n}"}}',
        outcome="rejected",
        defer=defer,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def test_the_writers_open_group_is_invisible_until_it_commits(journal: Journal) -> None:
    reader = EventLog(journal.path)
    try:
        _refusal(journal, 1, defer=True)  # in the open group: could still roll back
        assert reader.events_after(0, 100) == []
        assert reader.last_seq() == 0
        journal.commit_now()
        [event] = reader.events_after(0, 100)
        assert (event.seq, event.type, event.strategy) == (1, "decision", "momentum")
        assert event.data == '{"signal_id":"s-1"}'
        assert reader.last_seq() == 1
    finally:
        reader.close()


def test_a_group_that_rolls_back_never_shows(journal: Journal) -> None:
    reader = EventLog(journal.path)
    try:
        _refusal(journal, 1, defer=True)
        journal._tx.abandon(RuntimeError("lost"))  # the group is rolled back
        assert reader.events_after(0, 100) == []
        _refusal(journal, 2)
        assert [e.data for e in reader.events_after(0, 100)] == ['{"signal_id":"s-2"}']
    finally:
        reader.close()


def test_pages_come_in_order_and_resume_after_the_last_id(journal: Journal) -> None:
    for n in range(7):
        _refusal(journal, n)
    reader = EventLog(journal.path)
    try:
        first = reader.events_after(0, 3)
        second = reader.events_after(first[-1].seq, 3)
        third = reader.events_after(second[-1].seq, 3)
        seqs = [e.seq for e in first + second + third]
        assert seqs == list(range(1, 8))
        assert reader.events_after(7, 3) == []
    finally:
        reader.close()


def test_a_strategy_filter_keeps_its_events_and_every_state(journal: Journal) -> None:
    _refusal(journal, 1, "momentum")
    _refusal(journal, 2, "meanrev")
    journal.record_state({"state": "halted", "halt": None})
    _refusal(journal, 3, "momentum")
    reader = EventLog(journal.path)
    try:
        mine = reader.events_after(0, 100, frozenset({"momentum"}))
        assert [(e.type, e.strategy) for e in mine] == [
            ("decision", "momentum"),
            ("state", None),
            ("decision", "momentum"),
        ]
        assert all(e.visible_to(frozenset({"momentum"})) for e in mine)
        assert len(reader.events_after(0, 100)) == 4
        assert [e.type for e in reader.events_after(0, 100, frozenset({"nobody"}))] == ["state"]
    finally:
        reader.close()


def test_the_reader_cannot_write(journal: Journal) -> None:
    reader = EventLog(journal.path)
    try:
        with pytest.raises(Exception, match="readonly"):
            reader._db.execute("DELETE FROM stream")
    finally:
        reader.close()


def test_an_unreadable_log_is_journal_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"not a database at all" * 100)
    reader = EventLog(path)
    try:
        with pytest.raises(JournalUnavailable):
            reader.events_after(0, 10)
    finally:
        reader.close()
