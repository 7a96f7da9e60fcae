"""A replace is checked with the order it replaces set aside; afterwards the book is exactly as
it was: exposure, open buys, pending quantities and the risk to a bracket entry's stop."""

from __future__ import annotations

from decimal import Decimal

from brokers.base import BrokerOrder
from gateway.risk.book import Book

MARKS = {"AAPL": Decimal(200)}
STOP = Decimal("0.03")


def resting(coid: str, side: str = "buy") -> BrokerOrder:
    return BrokerOrder(
        client_order_id=coid,
        broker_order_id=f"b-{coid}",
        symbol="AAPL",
        side=side,
        quantity=5,
        status="accepted",
        order_type="limit",
        limit_price=190,
    )


def totals(book: Book) -> tuple[Decimal, ...]:
    return (
        book.gross_exposure(MARKS),
        book.open_buy_notional(),
        book.pending_qty("AAPL"),
        book.pending_sell_qty("AAPL"),
        book.at_risk(MARKS, STOP),
    )


def test_setting_an_order_aside_and_back_leaves_the_book_as_it_was() -> None:
    book = Book()
    book.set_entry_stop("gw-1", Decimal(180))  # a bracket entry: risk to its stop
    book.apply_order(resting("gw-1"), valued_at=Decimal(190))
    book.apply_order(resting("gw-2", "sell"), valued_at=Decimal(190))
    before = totals(book)
    with book.set_aside("gw-1") as tracked:
        assert tracked is not None and "gw-1" not in book.orders
        assert book.open_buy_notional() == 0
        assert book.at_risk(MARKS, STOP) < before[4]
    assert totals(book) == before
    assert book.orders["gw-1"].stop == Decimal(180)
    with book.set_aside("gw-none") as nothing:
        assert nothing is None
    assert totals(book) == before
