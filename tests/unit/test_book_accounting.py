"""The book as reconciliation, restarts and the buying-power estimate read it: broker corrections
per symbol, the fill sequence, open buy notional, the price an open order is valued at, stale and
restart-time updates that must add no fill, and the positions view."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from brokers.base import BrokerOrder, Position, Side
from gateway.risk.book import Book, Reservation

D = Decimal


def order(coid: str, *, side: str = "buy", qty: str = "10", **fields: Any) -> BrokerOrder:
    base: dict[str, Any] = {
        "client_order_id": coid,
        "broker_order_id": f"b-{coid}",
        "symbol": "AAPL",
        "side": side,
        "quantity": qty,
        "status": "accepted",
    }
    base.update(fields)
    return BrokerOrder(**base)


def filled(coid: str, qty: str, price: str, *, side: str = "buy", symbol: str = "AAPL") -> Any:
    return order(
        coid,
        side=side,
        qty=qty,
        symbol=symbol,
        filled_quantity=qty,
        avg_fill_price=price,
        status="filled",
    )


def test_load_positions_drops_flat_symbols() -> None:
    book = Book()
    book.load_positions(
        [Position(symbol="AAPL", qty=5, avg_price=10), Position(symbol="MSFT", qty=0, avg_price=1)]
    )
    assert set(book.holdings) == {"AAPL"}
    assert (book.position_qty("AAPL"), book.holdings["AAPL"].avg_price) == (D(5), D(10))


def test_reconciliation_corrects_one_symbol_to_the_brokers_figure() -> None:
    book = Book()
    book.load_positions(
        [Position(symbol="AAPL", qty=5, avg_price=10), Position(symbol="MSFT", qty=3, avg_price=2)]
    )
    book.correct_position("AAPL", Position(symbol="AAPL", qty=-4, avg_price=11))
    assert (book.position_qty("AAPL"), book.holdings["AAPL"].avg_price) == (D(-4), D(11))
    book.correct_position("AAPL", Position(symbol="AAPL", qty=0, avg_price=11))
    assert "AAPL" not in book.holdings
    book.correct_position("MSFT", None)
    assert book.holdings == {}
    book.correct_position("TSLA", None)  # flat already: nothing to do
    assert book.holdings == {}


def test_filled_since_names_only_symbols_filled_after_the_sequence_number() -> None:
    book = Book()
    book.apply_order(filled("a", "1", "10"))
    seq = book.fill_seq
    assert book.filled_since(seq) == set()
    book.apply_order(filled("m", "1", "10", symbol="MSFT"))
    assert book.fill_seq == seq + 1
    assert book.filled_since(seq) == {"MSFT"}
    assert book.filled_since(seq - 1) == {"AAPL", "MSFT"}
    assert book.filled_since(book.fill_seq) == set()


def test_open_buy_notional_counts_open_buys_and_buy_reservations_only() -> None:
    book = Book()
    book.apply_order(order("buy", qty="10", order_type="limit", limit_price="50"))
    book.apply_order(order("sell", side="sell", qty="4", order_type="limit", limit_price="70"))
    assert book.open_buy_notional() == D(500)
    book.reserve(Reservation("r", "AAPL", Side.BUY, D(2), D(100)))
    assert book.open_buy_notional() == D(700)
    book.release("r")
    book.apply_order(
        order(
            "buy",
            qty="10",
            order_type="limit",
            limit_price="50",
            filled_quantity="4",
            avg_fill_price="50",
            status="partially_filled",
        )
    )
    assert book.open_buy_notional() == D(300)  # the 6 still to fill
    assert book.gross_exposure({}) == D(300) + D(280) + D(200)  # buys, sells, 4 held at 50


def test_an_open_order_is_valued_at_the_price_it_passed_the_checks_at() -> None:
    book = Book()
    book.reserve(Reservation("r", "AAPL", Side.BUY, D(10), D(200)))
    book.apply_order(order("r", order_type="market"))  # the broker's ack: no price in it
    assert book.gross_exposure({}) == D(2000)
    book.apply_order(order("v", order_type="market"), valued_at=D(150))
    assert book.gross_exposure({}) == D(3500)
    book.apply_order(order("v", order_type="market"))  # a later update keeps its valuation
    assert book.gross_exposure({}) == D(3500)
    book.apply_order(order("l", order_type="limit", limit_price="20"))
    assert book.gross_exposure({}) == D(3700)


def test_a_stale_update_after_a_newer_one_adds_no_fill_and_keeps_the_larger_fill() -> None:
    book = Book()
    newer = dict(order_type="limit", limit_price="50", avg_fill_price="50")
    book.apply_order(order("c", filled_quantity="6", status="partially_filled", **newer))
    stale = book.apply_order(order("c", filled_quantity="2", status="partially_filled", **newer))
    assert stale == 0
    assert book.position_qty("AAPL") == D(6)
    assert book.open_orders()[0].filled_quantity == D(6)
    assert book.pending_qty("AAPL") == D(4)


def test_fills_already_in_the_loaded_positions_are_not_counted_again() -> None:
    book = Book()
    book.load_positions([Position(symbol="AAPL", qty=6, avg_price=50)])
    book.track(order("c", filled_quantity="0", order_type="limit", limit_price="50"), D(50))
    book.filled_before_start.add("c")
    part = dict(order_type="limit", limit_price="50", avg_fill_price="50")
    assert book.apply_order(order("c", filled_quantity="6", status="partially_filled", **part)) == 0
    assert book.position_qty("AAPL") == D(6)
    assert book.apply_order(order("c", filled_quantity="10", status="filled", **part)) == D(4)
    assert book.position_qty("AAPL") == D(10)


def test_track_holds_an_order_at_a_state_without_replaying_its_fills() -> None:
    book = Book()
    book.reserve(Reservation("c", "AAPL", Side.BUY, D(10), D(60)))
    book.track(
        order("c", filled_quantity="3", avg_fill_price="50", status="partially_filled"), D(50)
    )
    assert book.position_qty("AAPL") == D(0)  # positions come from the broker
    assert book.reservations == {}
    assert book.gross_exposure({}) == D(350)
    book.track(order("c", filled_quantity="10", avg_fill_price="50", status="filled"), D(50))
    assert book.open_orders() == [] and book.gross_exposure({}) == D(0)
    assert (
        book.apply_order(order("c", filled_quantity="10", avg_fill_price="50", status="filled"))
        == 0
    )


def test_positions_view_is_sorted_with_the_mark_where_there_is_one() -> None:
    book = Book()
    book.apply_order(filled("m", "2", "300", symbol="MSFT"))
    book.apply_order(filled("a", "3", "100"))
    assert book.positions({"AAPL": D(101)}) == [
        Position(symbol="AAPL", qty=3, avg_price=100, market_price=101),
        Position(symbol="MSFT", qty=2, avg_price=300, market_price=None),
    ]
    assert book.market_value({"AAPL": D(101)}) == D(303) + D(600)


def test_a_short_position_counts_negative_in_value_and_positive_in_exposure() -> None:
    book = Book()
    book.apply_order(filled("s", "3", "100", side="sell"))
    assert book.cash == D(300)
    assert book.market_value({"AAPL": D(110)}) == D(-330)
    assert book.positions_exposure({"AAPL": D(110)}) == D(330)


def test_an_unpriced_market_order_is_valued_at_its_fill_price_or_nothing() -> None:
    book = Book()
    book.apply_order(order("m", order_type="market"))  # no reservation, no limit, no fill
    assert book.gross_exposure({}) == D(0)
    book.apply_order(
        order(
            "p",
            order_type="market",
            filled_quantity="4",
            avg_fill_price="50",
            status="partially_filled",
        )
    )
    assert book.gross_exposure({}) == D(200) + D(300)  # 4 held and 6 to fill, both at 50


def test_tracking_an_order_again_ends_its_restart_time_fill_exemption() -> None:
    # The journal's state is tracked after the restart marked it: fills past that state count.
    book = Book()
    book.filled_before_start.add("c")
    book.track(
        order("c", filled_quantity="3", avg_fill_price="50", status="partially_filled"), D(50)
    )
    assert "c" not in book.filled_before_start
    more = order("c", filled_quantity="5", avg_fill_price="50", status="partially_filled")
    assert book.apply_order(more) == D(2)
    assert book.position_qty("AAPL") == D(2)


def test_reserving_an_order_again_replaces_its_reservation() -> None:
    book = Book()
    book.reserve(Reservation("r", "AAPL", Side.BUY, D(10), D(100)))
    book.reserve(Reservation("r", "AAPL", Side.BUY, D(10), D(120)))
    assert book.gross_exposure({}) == D(1200)
    assert (book.pending_qty("AAPL"), book.open_buy_notional()) == (D(10), D(1200))
    book.release("r")
    assert (book.gross_exposure({}), book.pending_qty("AAPL")) == (D(0), D(0))


def test_pending_quantity_is_signed_sells_count_down() -> None:
    book = Book()
    book.apply_order(order("sell", side="sell", qty="4", order_type="limit", limit_price="70"))
    assert book.pending_qty("AAPL") == D(-4)
    book.reserve(Reservation("r", "AAPL", Side.BUY, D(10), D(60)))
    assert book.pending_qty("AAPL") == D(6)
    book.reserve(Reservation("s", "AAPL", Side.SELL, D(1), D(60)))
    assert (book.pending_qty("AAPL"), book.pending_sell_qty("AAPL")) == (D(5), D(5))
