"""Reconciliation: the broker's open orders and positions against the gateway's book.

Orders the broker knows and we don't are adopted (flagged external); ours the broker no longer
has open are looked up (they may have filled or been cancelled while the link was down) and
marked lost only when the broker has no such order; positions are corrected to the broker's
truth. Orders still on their way (a reservation, no answer yet) are neither adopted nor
compared: the submit's answer settles them. The broker's answers are older than the book where
something filled while they travelled: such a symbol is not compared, and an order the book
knows as final is ours, whatever an older open list says. Every difference is returned for the
journal, and the largest position difference as a fraction of equity decides whether to halt.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from brokers.base import BrokerOrder, Position
from gateway.risk.book import Book

ZERO = Decimal(0)


@dataclass
class Reconciliation:
    at: str
    adopted: list[str] = field(default_factory=list)  # client_order_ids the broker had, we did not
    lost: list[str] = field(default_factory=list)  # ours that the broker no longer has at all
    settled: list[str] = field(default_factory=list)  # ours that filled or ended meanwhile
    positions: list[dict[str, Any]] = field(default_factory=list)
    worst_fraction: Decimal = ZERO

    @property
    def differences(self) -> int:
        return len(self.adopted) + len(self.lost) + len(self.settled) + len(self.positions)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "differences": self.differences,
            "adopted_orders": self.adopted,
            "lost_orders": self.lost,
            "settled_orders": self.settled,
            "positions": self.positions,
            "worst_position_fraction": float(self.worst_fraction),
        }


def compare(
    book: Book,
    broker_orders: list[BrokerOrder],
    broker_positions: list[Position],
    *,
    marks: dict[str, Decimal],
    equity: Decimal,
    at: str,
    filled_meanwhile: AbstractSet[str] = frozenset(),
) -> Reconciliation:
    result = Reconciliation(at=at)
    theirs = {o.client_order_id: o for o in broker_orders}
    known = book.orders.keys() | book.reservations.keys() | book.final_fills.keys()
    for coid in theirs.keys() - known:
        result.adopted.append(coid)
    for coid in book.orders.keys() - theirs.keys():
        result.lost.append(coid)
    broker_qty = {p.symbol: p.qty for p in broker_positions}
    on_the_way = {r.symbol for r in book.reservations.values()} | filled_meanwhile
    for symbol in sorted((set(broker_qty) | set(book.holdings)) - on_the_way):
        ours = book.position_qty(symbol)
        actual = broker_qty.get(symbol, ZERO)
        if ours != actual:
            price = marks.get(symbol) or next(
                (p.avg_price for p in broker_positions if p.symbol == symbol), ZERO
            )
            value = abs(actual - ours) * price
            fraction = value / equity if equity > 0 else Decimal(1)
            result.worst_fraction = max(result.worst_fraction, fraction)
            result.positions.append(
                {
                    "symbol": symbol,
                    "journal_qty": float(ours),
                    "broker_qty": float(actual),
                    "value": float(value),
                    "fraction_of_equity": float(fraction),
                }
            )
    result.adopted.sort()
    result.lost.sort()
    return result
