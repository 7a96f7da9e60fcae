"""The order view shows the journal's rows at the book's state: an update the book holds and
the journal has not written yet (next loop tick, or a journal that cannot write) shows."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.base import BrokerOrder, OrderRequest
from gateway.pipeline.order_views import OrderViews
from gateway.risk.book import Book
from gateway.store.journal import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.sqlite3")
    yield journal
    journal.close()


def intent(journal: Journal, n: int, strategy: str = "momentum") -> str:
    coid = f"gw-{n}"
    request = OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side="buy",
        quantity=5,
        order_type="limit",
        limit_price=190,
    )
    journal.record_intent(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{}",
        strategy=strategy,
        symbol="AAPL",
        order=request,
        valued_at="190",
    )
    return coid


def held(coid: str, status: str, **fields: object) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=coid,
        broker_order_id=f"b-{coid}",
        symbol="AAPL",
        side="buy",
        quantity=fields.pop("quantity", 5),
        status=status,
        order_type="limit",
        limit_price=fields.pop("limit_price", 190),
        **fields,
    )


def test_the_book_state_shows_before_the_journal_has_it(journal: Journal) -> None:
    flushed: list[int] = []
    book = Book()
    views = OrderViews(journal, book, lambda: flushed.append(1))
    one, two = intent(journal, 1), intent(journal, 2, "meanrev")
    book.apply_order(held(one, "accepted", quantity=7, limit_price=189))
    book.apply_order(held(two, "accepted"))
    shown = views.get(one, None)
    assert shown is not None and flushed  # pending updates are written first
    assert (shown.status, shown.quantity, shown.limit_price) == ("accepted", 7, 189)
    assert shown.broker_order_id == "b-gw-1" and shown.strategy == "momentum"
    book.apply_order(held(two, "canceled"))  # e.g. the kill switch: the journal follows later
    flushed.clear()
    assert [
        o.client_order_id for o in views.list(open_only=True, strategies=None, symbol=None)
    ] == [one]
    assert flushed
    every = views.list(open_only=False, strategies=None, symbol=None)
    assert [o.client_order_id for o in every] == [one, two]
    assert views.get(two, ("momentum",)) is None  # another strategy's: as if unknown
    assert views.get("gw-none", None) is None
    assert book.orders[one].price == Decimal(189)
