"""A restart holds the journal's orders at the broker's state of the moment the positions were
loaded, so a partial fill made while the gateway was down is counted once (in the positions),
and only what fills afterwards is added."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from brokers.base import BrokerOrder, Position
from brokers.simulated import SimulatedBroker
from gateway.pipeline.restore import rebase_on_broker
from gateway.pipeline.settle import UnknownOrders
from gateway.risk.book import Book
from gateway.store.journal import Journal


def _order(filled: int, status: str = "partially_filled") -> BrokerOrder:
    return BrokerOrder(
        client_order_id="gw-rest",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        filled_quantity=filled,
        status=status,
        limit_price=199,
        avg_fill_price=199 if filled else None,
    )


def test_a_partial_fill_made_while_down_is_counted_once(tmp_path: Path) -> None:
    book = Book()
    # The broker's positions hold the 4 filled while the gateway was down...
    book.load_positions([Position(symbol="AAPL", qty=4, avg_price=199, market_price=199)])
    # ...and the journal last saw the order with nothing filled.
    book.track(_order(0, "accepted"), Decimal(199))
    journal = Journal(tmp_path / "journal.sqlite3")
    unknown = UnknownOrders(SimulatedBroker(), apply_order=lambda o: None, absent=lambda c, w: None)
    rebase_on_broker(book, [_order(4)], unknown, journal)
    assert book.orders["gw-rest"].order.filled_quantity == 4
    assert book.pending_qty("AAPL") == 6  # only what is still to fill is open exposure
    assert book.apply_order(_order(10, "filled")) == 6  # the rest fills: 6 more, not 10
    assert book.position_qty("AAPL") == 10
    journal.close()


def test_an_order_no_longer_open_adds_no_fill_when_its_state_arrives(tmp_path: Path) -> None:
    book = Book()
    book.load_positions([Position(symbol="AAPL", qty=10, avg_price=199, market_price=199)])
    book.track(_order(0, "accepted"), Decimal(199))
    journal = Journal(tmp_path / "journal.sqlite3")
    unknown = UnknownOrders(SimulatedBroker(), apply_order=lambda o: None, absent=lambda c, w: None)
    rebase_on_broker(book, [], unknown, journal)  # it filled while the gateway was down
    assert book.apply_order(_order(10, "filled")) == 0
    assert book.position_qty("AAPL") == 10 and book.orders == {}
    journal.close()
