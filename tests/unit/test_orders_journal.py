"""The journal's cancel and replace writes: hard writes, committed when they return, whole or
not at all; a replace's outcome carries the order's new values and its events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokers.base import BrokerOrder
from gateway.store.journal import Journal, JournalUnavailable
from tests.journal_faults import install_statement_fails
from tests.unit.test_orders_views import intent


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.sqlite3")
    yield journal
    journal.close()


def committed(journal: Journal, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    reader = sqlite3.connect(journal.path)
    try:
        return reader.execute(sql, params).fetchall()
    finally:
        reader.close()


def replace_intent(journal: Journal, signal_id: str = "r-1", coid: str = "gw-1") -> int:
    return journal.record_replace_intent(
        signal_id=signal_id,
        body_hash="h",
        body='{"replace_of":"gw-1","signal_id":"r-1","quantity":"7"}',
        strategy="momentum",
        symbol="AAPL",
        client_order_id=coid,
        status="accepted",
    )


def test_a_cancel_intent_is_committed_when_it_returns(journal: Journal) -> None:
    coid = intent(journal, 1)
    journal.record_cancel_intent(coid, "accepted", "api:strategy")
    assert committed(
        journal, "SELECT status, detail FROM order_events WHERE client_order_id=?", coid
    ) == [("accepted", "cancel_requested by api:strategy")]


def test_a_replace_intent_is_committed_undecided(journal: Journal) -> None:
    coid = intent(journal, 1)
    replace_intent(journal, coid=coid)
    assert committed(
        journal, "SELECT client_order_id, decision FROM signals WHERE signal_id='r-1'"
    ) == [(coid, None)]
    assert ("r-1", coid) in [(row[0], row[3]) for row in journal.undecided()]


def test_a_replace_intent_is_whole_or_absent(journal: Journal) -> None:
    coid = intent(journal, 1)
    install_statement_fails(journal, failing=("INSERT INTO order_events",))
    with pytest.raises((JournalUnavailable, sqlite3.OperationalError)):
        replace_intent(journal, coid=coid)
    assert journal.signal("r-1") is None
    assert committed(journal, "SELECT * FROM signals WHERE signal_id='r-1'") == []


def test_a_replaced_order_takes_its_new_values_with_its_events(journal: Journal) -> None:
    coid = intent(journal, 1)
    replace_intent(journal, coid=coid)
    order = BrokerOrder(
        client_order_id=coid,
        broker_order_id="b-2",
        symbol="AAPL",
        side="buy",
        quantity=7,
        status="accepted",
        order_type="limit",
        limit_price=191,
    )
    journal.record_replace_decision(
        "r-1", '{"signal_id":"r-1"}', "accepted", order, valued_at="191", detail="replaced"
    )
    stored = journal.order(coid)
    assert stored is not None
    assert (stored.quantity, stored.limit_price, stored.valued_at) == ("7", "191", "191")
    assert (stored.broker_order_id, stored.status, stored.signal_id) == ("b-2", "accepted", "s-1")
    rows = committed(journal, "SELECT type, payload FROM stream ORDER BY seq")
    kinds = [kind for kind, _ in rows]
    assert kinds[-2:] == ["decision", "order"]
    assert json.loads(rows[-1][1])["quantity"] == 7
    stored_signal = journal.signal("r-1")
    assert stored_signal is not None and stored_signal.decision == '{"signal_id":"r-1"}'


def test_a_refused_replace_leaves_the_order_row_as_it_was(journal: Journal) -> None:
    coid = intent(journal, 1)
    before = journal.order(coid)
    replace_intent(journal, coid=coid)
    journal.record_replace_decision("r-1", "{}", "rejected", None, detail="refused")
    after = journal.order(coid)
    assert after == before


def test_a_broker_update_carries_the_orders_quantity_and_prices(journal: Journal) -> None:
    """A replace whose decision the journal could not keep: the broker's own update (Alpaca's
    ``replaced``, IB's status after a modify) still brings the row the new values."""
    coid = intent(journal, 1)
    moved = BrokerOrder(
        client_order_id=coid,
        broker_order_id="b-9",
        symbol="AAPL",
        side="buy",
        quantity=8,
        status="accepted",
        order_type="limit",
        limit_price=188,
    )
    journal.record_order_updates([(moved, None, None)])
    stored = journal.order(coid)
    assert stored is not None and (stored.quantity, stored.limit_price) == ("8", "188")
    journal.record_order_updates([(moved.model_copy(update={"quantity": 9}), None, None)])
    stored = journal.order(coid)
    assert stored is not None and stored.quantity == "9"  # a change of quantity alone is new
