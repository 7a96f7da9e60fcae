"""The journal's hot-path economies keep every row that carries information."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.base import BrokerOrder, Fill, OrderRequest
from gateway.store.journal import Journal, _Stamp
from tests.journal_backends import Backend


def _order(status: str = "filled", filled: int = 10, avg: str | None = "200.05") -> BrokerOrder:
    return BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="sim-1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        filled_quantity=filled,
        status=status,
        avg_fill_price=avg,
    )


def _fill() -> Fill:
    return Fill(
        client_order_id="gw-1",
        broker_order_id="sim-1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        price=Decimal("200.05"),
        ts=datetime.now(UTC),
        fill_id="sim-1-1",
    )


def _journal(tmp_path: Path, backend: Backend) -> Journal:
    journal = backend.open(tmp_path / "j.sqlite3")
    journal.record_intent(
        signal_id="s-1",
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        order=OrderRequest(client_order_id="gw-1", symbol="AAPL", side="buy", quantity=10),
        valued_at="200.05",
    )
    return journal


def _count(journal: Journal, table: str) -> int:
    return int(journal._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_stamp_is_isoformat_text() -> None:
    stamp = _Stamp()
    before = datetime.now(UTC)
    text = stamp()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", text)
    assert before <= datetime.fromisoformat(text) <= after


def test_an_event_repeating_the_journaled_state_adds_only_its_fill(
    tmp_path: Path, backend: Backend
) -> None:
    journal = _journal(tmp_path, backend)
    journal.record_decision("s-1", "{}", "accepted", _order())
    journal.record_order_updates([(_order(), _fill(), None)])
    assert _count(journal, "order_events") == 1
    assert _count(journal, "fills") == 1
    # A new state, or the same state with a reason, is written.
    journal.record_order_updates([(_order(), None, "broker says so")])
    journal.record_order_updates([(_order("canceled"), None, None)])
    assert _count(journal, "order_events") == 3
    status = journal._db.execute("SELECT status FROM orders").fetchone()[0]
    assert status == "canceled"
    journal.close()


def test_a_rolled_back_state_is_written_again(tmp_path: Path, backend: Backend) -> None:
    journal = _journal(tmp_path, backend)
    journal.record_decision("s-1", "{}", "accepted", _order(), defer=True)
    # A later write in the same group fails: the group stays, the remembered state is dropped.
    with pytest.raises(backend.integrity_error):
        journal.record_refusal(
            signal_id="s-1",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            decision_json="{}",
            outcome="rejected",
            defer=True,
        )
    journal.commit_now()
    journal.record_order_updates([(_order(), None, None)])
    # SQLite undoes the failed statement alone; PostgreSQL drops the whole group (the decision
    # with it): either way the state is written again, not taken as journaled.
    assert _count(journal, "order_events") == (1 if backend.postgres else 2)
    journal.close()


def test_a_failed_first_write_leaves_nothing_open(tmp_path: Path, backend: Backend) -> None:
    journal = _journal(tmp_path, backend)
    with pytest.raises(backend.integrity_error):
        journal.record_intent(
            signal_id="s-1",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            order=None,
            valued_at=None,
        )
    assert not journal._db.in_transaction
    journal.record_decision("s-1", "{}", "accepted", _order())
    assert journal.signal("s-1") is not None
    assert journal.signal("s-1").decision == "{}"  # type: ignore[union-attr]
    journal.close()


def test_a_batch_compares_each_update_with_the_one_before(tmp_path: Path, backend: Backend) -> None:
    journal = _journal(tmp_path, backend)
    journal.record_decision("s-1", "{}", "accepted", _order())
    # A stale update, then the current state again, in one batch: the row ends current.
    journal.record_order_updates(
        [(_order("partially_filled", 5, "200.05"), None, None), (_order(), _fill(), None)]
    )
    row = journal._db.execute("SELECT status, filled_quantity FROM orders").fetchone()
    assert row == ("filled", "10")
    assert _count(journal, "order_events") == 3
    journal.close()


def test_single_statement_writes_join_the_group_and_commit_with_it(
    tmp_path: Path, backend: Backend
) -> None:
    journal = _journal(tmp_path, backend)
    journal.record_decision("s-1", "{}", "accepted", _order(), defer=True)
    journal.record_order_updates([(_order(), _fill(), None)], defer=True)
    assert journal._db.in_transaction
    journal.commit_now()
    assert not journal._db.in_transaction
    assert (_count(journal, "order_events"), _count(journal, "fills")) == (1, 1)
    journal.close()


def test_an_intent_whose_order_fails_leaves_no_signal_row(tmp_path: Path, backend: Backend) -> None:
    journal = _journal(tmp_path, backend)
    journal.record_decision("s-1", "{}", "accepted", _order(), defer=True)  # the group is open
    with pytest.raises(backend.integrity_error):  # gw-1 exists: the order insert fails
        journal.record_intent(
            signal_id="s-2",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            order=OrderRequest(client_order_id="gw-1", symbol="AAPL", side="buy", quantity=1),
            valued_at="200.05",
            defer=True,
        )
    journal.commit_now()
    assert journal.signal("s-2") is None
    # PostgreSQL drops the whole group on a failed statement: the decision beside it too.
    decided = None if backend.postgres else "{}"
    assert journal.signal("s-1").decision == decided  # type: ignore[union-attr]
    journal.close()
