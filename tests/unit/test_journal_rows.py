"""Each journal write persists every field it is given, where it belongs, at the moment it was
made; a soft write kept during an outage is written later with its own values and time."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder, OrderRequest
from gateway.store.journal import Journal, JournalUnavailable
from tests.journal_backends import Backend, committed
from tests.journal_faults import CommitFails


def _rows(journal: Journal, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """What another connection reads: only what was committed."""
    return committed(journal, sql, *args)


def _iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


@pytest.fixture
def journal(tmp_path: Path, backend: Backend) -> Journal:
    return backend.open(tmp_path / "nested" / "state" / "journal.sqlite3")


def _intent(journal: Journal, n: int = 1, *, order: bool = True) -> int:
    request = OrderRequest(
        client_order_id=f"gw-{n}",
        symbol="AAPL",
        side="sell",
        quantity=7,
        order_type="limit",
        limit_price="201.25",
    )
    return journal.record_intent(
        signal_id=f"s-{n}",
        body_hash=f"hash-{n}",
        body=f'{{"n": {n}}}',
        strategy="momentum",
        symbol="AAPL",
        order=request if order else None,
        valued_at="200.5",
    )


def test_an_intent_persists_its_signal_and_its_order(journal: Journal) -> None:
    before = datetime.now(UTC)
    _intent(journal)
    after = datetime.now(UTC)
    ((sid, digest, body, strategy, symbol, coid, decision, outcome, received, decided),) = _rows(
        journal, "SELECT * FROM signals"
    )
    assert (sid, digest, body, strategy, symbol, coid) == (
        "s-1",
        "hash-1",
        '{"n": 1}',
        "momentum",
        "AAPL",
        "gw-1",
    )
    assert decision is None and outcome is None and decided is None
    assert before <= _iso(received) <= after
    (order,) = journal.orders()
    assert (order.signal_id, order.side, order.quantity, order.limit_price, order.valued_at) == (
        "s-1",
        "sell",
        "7",
        "201.25",
        "200.5",
    )
    assert order.status == "pending_submit"
    journal.close()


def test_an_intent_without_an_order_names_no_order(journal: Journal) -> None:
    _intent(journal, order=False)
    assert _rows(journal, "SELECT client_order_id FROM signals") == [(None,)]
    assert journal.orders() == []
    journal.close()


def test_a_refusal_persists_its_decision_and_outcome_received_and_decided_at_once(
    journal: Journal,
) -> None:
    journal.record_refusal(
        signal_id="s-1",
        body_hash="h-1",
        body="{}",
        strategy="momentum",
        symbol="MSFT",
        decision_json='{"decision":"rejected"}',
        outcome="rejected",
    )
    ((sid, digest, body, strategy, symbol, coid, decision, outcome, received, decided),) = _rows(
        journal, "SELECT * FROM signals"
    )
    assert (sid, digest, body, strategy, symbol, coid) == (
        "s-1",
        "h-1",
        "{}",
        "momentum",
        "MSFT",
        None,
    )
    assert (decision, outcome) == ('{"decision":"rejected"}', "rejected")
    assert received == decided and _iso(received)
    journal.close()


def test_a_decision_persists_its_outcome_time_and_the_orders_state(journal: Journal) -> None:
    _intent(journal)
    order = BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="sell",
        quantity=7,
        filled_quantity=2,
        status="partially_filled",
        order_type="limit",
        limit_price="201.25",
        avg_fill_price="201.5",
    )
    journal.record_decision("s-1", '{"decision":"accepted"}', "accepted", order)
    ((decision, outcome, received, decided),) = _rows(
        journal, "SELECT decision, outcome, received_at, decided_at FROM signals"
    )
    assert (decision, outcome) == ('{"decision":"accepted"}', "accepted")
    assert _iso(decided) >= _iso(received)
    ((status, broker_id, filled, avg),) = _rows(
        journal, "SELECT status, broker_order_id, filled_quantity, avg_fill_price FROM orders"
    )
    assert (status, broker_id, Decimal(filled), Decimal(avg)) == (
        "partially_filled",
        "b-1",
        Decimal(2),
        Decimal("201.5"),
    )
    journal.close()


def test_a_decision_without_an_order_leaves_the_order_row_alone(journal: Journal) -> None:
    _intent(journal)
    journal.record_decision("s-1", '{"decision":"rejected"}', "rejected")
    assert _rows(journal, "SELECT outcome FROM signals") == [("rejected",)]
    assert _rows(journal, "SELECT status FROM orders") == [("pending_submit",)]
    assert _rows(journal, "SELECT COUNT(*) FROM order_events") == [(0,)]
    journal.close()


def test_an_order_status_persists_the_status_and_an_event_with_its_detail(
    journal: Journal,
) -> None:
    _intent(journal)
    assert journal.record_order_status("gw-1", "rejected", "never placed") is True
    ((status, updated),) = _rows(journal, "SELECT status, updated_at FROM orders")
    assert status == "rejected"
    ((coid, ev_status, detail, at),) = _rows(
        journal, "SELECT client_order_id, status, detail, at FROM order_events"
    )
    assert (coid, ev_status, detail) == ("gw-1", "rejected", "never placed")
    assert at == updated and _iso(at)
    journal.close()


def test_marking_an_order_external_persists_the_mark(journal: Journal) -> None:
    _intent(journal, 1)
    _intent(journal, 2)
    assert journal.mark_external("gw-2") is True
    assert _rows(journal, "SELECT client_order_id, external FROM orders") == [
        ("gw-1", 0),
        ("gw-2", 1),
    ]
    journal.close()


def test_an_event_persists_its_kind_payload_and_time(journal: Journal) -> None:
    at = datetime(2026, 11, 30, 12, 0, 1, 5, tzinfo=UTC)
    assert journal.record_event("note", {"price": Decimal("1.5"), "when": at}, at=at) is True
    ((kind, payload, stamp),) = _rows(journal, "SELECT kind, payload, at FROM events")
    assert (kind, payload, stamp) == (
        "note",
        '{"price": "1.5", "when": "2026-11-30 12:00:01.000005+00:00"}',
        at.isoformat(),
    )
    journal.close()


def test_an_event_without_a_time_is_stamped_now(journal: Journal) -> None:
    before = datetime.now(UTC)
    journal.record_event("note", {})
    after = datetime.now(UTC)
    ((stamp,),) = _rows(journal, "SELECT at FROM events")
    assert before <= _iso(stamp) <= after
    journal.close()


def test_a_value_is_persisted_and_replaced(journal: Journal) -> None:
    assert journal.put("state", {"qty": Decimal("2.5")}) is True
    assert journal.put("state", {"qty": Decimal("3")}) is True
    assert _rows(journal, "SELECT key, value FROM kv WHERE key='state'") == [
        ("state", '{"qty": "3"}')
    ]
    journal.close()


def test_soft_writes_kept_during_an_outage_are_written_later_with_their_values_and_time(
    journal: Journal,
) -> None:
    _intent(journal)
    journal._tx.db = CommitFails(journal._db, times=100)  # type: ignore[assignment]
    at = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert journal.record_event("note", {"n": 1}, at=at) is False  # its commit fails: kept
    assert journal.put("state", 1) is False  # queued behind the kept write
    assert journal.record_order_status("gw-1", "canceled", "by hand") is False
    assert journal.mark_external("gw-1") is False
    assert journal.backlog == 4
    journal._tx.db = journal._db  # the disk takes writes again
    assert journal.probe()
    assert _rows(journal, "SELECT kind, payload, at FROM events") == [
        ("note", '{"n": 1}', at.isoformat())
    ]
    assert journal.get("state") == 1
    assert _rows(journal, "SELECT status, external FROM orders") == [("canceled", 1)]
    assert _rows(journal, "SELECT detail FROM order_events") == [("by hand",)]
    journal.close()


def test_closing_commits_what_is_open_and_leaves_the_file_checkpointed(
    tmp_path: Path, backend: Backend
) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = backend.open(path)
    journal.record_intent(
        signal_id="s-1",
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        order=None,
        valued_at=None,
        defer=True,
    )
    journal.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    assert backend.rows(path, "SELECT signal_id FROM signals") == [("s-1",)]


def test_closing_with_a_commit_that_fails_still_closes(tmp_path: Path, backend: Backend) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = backend.open(path)
    journal.record_intent(
        signal_id="s-1",
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        order=None,
        valued_at=None,
        defer=True,
    )
    real = journal._db
    journal._tx.db = CommitFails(real)  # type: ignore[assignment]
    journal.close()  # no raise: the loss is logged
    with pytest.raises(backend.closed_error):
        real.execute("SELECT 1")  # closed
    assert backend.rows(path, "SELECT signal_id FROM signals") == []


def _broker_order(status: str = "partially_filled", filled: int = 2) -> BrokerOrder:
    return BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="sell",
        quantity=7,
        filled_quantity=filled,
        status=status,
        order_type="limit",
        limit_price="201.25",
        avg_fill_price="201.5",
    )


def test_order_updates_are_committed_at_once_unless_deferred(journal: Journal) -> None:
    _intent(journal)
    assert journal.record_order_updates([(_broker_order(), None, "from the stream")]) is True
    assert _rows(journal, "SELECT status, detail FROM order_events") == [
        ("partially_filled", "from the stream")
    ]
    journal.close()


def test_a_decision_repeating_the_journaled_order_state_adds_no_order_event(
    journal: Journal,
) -> None:
    _intent(journal)
    journal.record_order_updates([(_broker_order(), None, None)])
    journal.record_decision("s-1", '{"decision":"accepted"}', "accepted", _broker_order())
    assert _rows(journal, "SELECT COUNT(*) FROM order_events") == [(1,)]
    assert _rows(journal, "SELECT outcome FROM signals") == [("accepted",)]
    journal.close()


def test_a_probe_records_when_the_journal_last_proved_writable(journal: Journal) -> None:
    before = datetime.now(UTC)
    assert journal.probe()
    ((value,),) = _rows(journal, "SELECT value FROM kv WHERE key='journal_probe'")
    assert before <= _iso(value.strip('"')) <= datetime.now(UTC)
    journal.close()


def _refusal(journal: Journal, signal_id: str, *, defer: bool) -> int:
    return journal.record_refusal(
        signal_id=signal_id,
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        decision_json='{"decision":"rejected"}',
        outcome="rejected",
        defer=defer,
    )


async def test_a_deferred_refusal_lands_with_its_groups_commit(journal: Journal) -> None:
    ticket = _refusal(journal, "s-1", defer=True)
    assert _rows(journal, "SELECT signal_id FROM signals") == []  # not before its commit
    await journal.commit(ticket)
    assert _rows(journal, "SELECT signal_id FROM signals") == [("s-1",)]
    journal.close()


async def test_a_refusal_after_a_lost_group_has_a_ticket_of_its_own(journal: Journal) -> None:
    lost = _refusal(journal, "s-1", defer=True)
    journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
    with pytest.raises(JournalUnavailable, match="disk I/O error"):
        journal.commit_now(lost)
    journal._tx.db = journal._db
    ticket = _refusal(journal, "s-2", defer=True)
    assert ticket != lost
    await journal.commit(ticket)  # its own group landed: no error
    assert _rows(journal, "SELECT signal_id FROM signals") == [("s-2",)]
    journal.close()


def test_a_refusal_that_fails_leaves_the_journal_unlocked(
    journal: Journal, backend: Backend
) -> None:
    _refusal(journal, "s-1", defer=False)
    with pytest.raises(backend.integrity_error):
        _refusal(journal, "s-1", defer=False)  # the same signal twice: a bug, refused
    assert not journal._db.in_transaction
    if backend.postgres:
        journal.close()
        return
    other = sqlite3.connect(journal.path, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")  # no write lock is left held
        other.execute("ROLLBACK")
    finally:
        other.close()
    journal.close()


async def test_a_deferred_decision_lands_with_its_groups_commit(journal: Journal) -> None:
    journal.commit_now(_intent(journal))
    ticket = journal.record_decision(
        "s-1", '{"decision":"accepted"}', "accepted", _broker_order(), defer=True
    )
    assert _rows(journal, "SELECT outcome FROM signals") == [(None,)]  # not before its commit
    await journal.commit(ticket)
    assert _rows(journal, "SELECT outcome FROM signals") == [("accepted",)]
    assert _rows(journal, "SELECT status FROM orders") == [("partially_filled",)]
    journal.close()


def test_an_intent_whose_order_fails_in_a_group_of_its_own_leaves_no_signal_row(
    journal: Journal, backend: Backend
) -> None:
    journal.commit_now(_intent(journal, 1))
    with pytest.raises(backend.integrity_error):  # gw-1 exists: the order insert fails
        journal.record_intent(
            signal_id="s-2",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            order=OrderRequest(client_order_id="gw-1", symbol="AAPL", side="buy", quantity=1),
            valued_at="200",
        )
    assert journal.record_event("note", {}) is True  # the next write commits
    assert _rows(journal, "SELECT signal_id FROM signals") == [("s-1",)]
    journal.close()
