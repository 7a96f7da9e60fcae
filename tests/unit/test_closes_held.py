"""What counts as closing for the firm's gate: the order shrinks the position held now, after
the open orders on its side of it have filled; a resting order is never counted as held."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.base import Position, Side
from gateway.models import Signal
from gateway.pipeline.admission import closes_held
from gateway.risk.book import Book, Reservation


def book(held: int, *pending: tuple[Side, int]) -> Book:
    b = Book()
    if held:
        b.load_positions([Position(symbol="AAPL", qty=held, avg_price=200)])
    for n, (side, qty) in enumerate(pending):
        b.reserve(Reservation(f"o-{n}", "AAPL", side, Decimal(qty), Decimal(200)))
    return b


def order(side: str, qty: int) -> Signal:
    return Signal.model_validate(
        {"signal_id": "s", "strategy": "m", "symbol": "AAPL", "side": side, "quantity": qty}
    )


@pytest.mark.parametrize(
    ("held", "pending", "side", "qty", "closes"),
    [
        (10, (), "sell", 10, True),
        (10, (), "sell", 11, False),  # flips to a short
        (10, ((Side.SELL, 4),), "sell", 6, True),
        (10, ((Side.SELL, 4),), "sell", 7, False),  # with the open sell, past the position
        (0, ((Side.BUY, 10),), "sell", 10, False),  # a resting buy is not held
        (10, ((Side.BUY, 10),), "sell", 20, False),
        (-10, (), "buy", 10, True),
        (-10, (), "buy", 11, False),
        (-10, ((Side.BUY, 4),), "buy", 7, False),
        (0, ((Side.SELL, 10),), "buy", 10, False),  # a resting sell is not a short held
        (10, (), "buy", 1, False),  # grows the position
    ],
)
def test_closes_held(
    held: int, pending: tuple[tuple[Side, int], ...], side: str, qty: int, closes: bool
) -> None:
    assert closes_held(order(side, qty), book(held, *pending)) is closes
