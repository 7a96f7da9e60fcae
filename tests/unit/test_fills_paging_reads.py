"""The journal's fills read in pages, on SQLite and on a pair's PostgreSQL alike: a cursor is a
fill's row (``fill_row`` resolves the API's fill_id to it), pages never repeat nor skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.journal import Journal
from tests.journal_backends import Backend


@pytest.fixture
def journal(tmp_path: Path, backend: Backend) -> Journal:
    journal = backend.open(tmp_path / "state" / "journal.sqlite3")
    db = journal._db  # rows as the pipeline leaves them, without a broker
    for n, (strategy, fill_id) in enumerate(
        [("momentum", "f-1"), ("meanrev", "f-2"), ("momentum", ""), ("momentum", "f-4")], 1
    ):
        db.execute(
            "INSERT INTO orders (client_order_id, signal_id, symbol, side, quantity, "
            "order_type, time_in_force, status, created_at, updated_at, strategy) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                f"gw-{n}",
                f"s-{n}",
                "AAPL",
                "buy",
                "1",
                "market",
                "day",
                "filled",
                "t",
                "t",
                strategy,
            ),
        )
        db.execute(
            "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, at) "
            "VALUES (?,?,?,?,?,?,?)",
            (f"gw-{n}", fill_id, "AAPL", "buy", "1", "100", "t"),
        )
    return journal


def test_a_cursor_is_the_row_of_the_fill_it_names(journal: Journal) -> None:
    ids = [f.fill_id for f in journal.fills()]
    assert ids[:2] == ["f-1", "f-2"] and ids[2].startswith("journal-") and ids[3] == "f-4"
    rows = [journal.fill_row(fill_id) for fill_id in ids]
    assert rows == sorted(rows) and None not in rows
    assert journal.fill_row("f-2", {"momentum"}) is None  # another strategy's: unknown
    assert journal.fill_row("nope") is None
    assert journal.fill_row("journal-999") is None


def test_pages_hold_each_fill_once_oldest_first(journal: Journal) -> None:
    everything = journal.fills()
    page, after, pages = None, None, []
    while page != []:
        page = journal.fills(limit=3, after=after)
        pages.extend(page)
        if page:
            after = journal.fill_row(page[-1].fill_id)
    assert pages == everything
    mine = journal.fills(strategies={"momentum"}, limit=2, after=journal.fill_row("f-1"))
    assert [f.client_order_id for f in mine] == ["gw-3", "gw-4"]
