"""Attack: fill recovery never journals more than an order filled, whatever the broker answers
and whatever arrives while it waits for the answer.

The race: recovery reads which orders are short, then awaits the broker's executions. A live
fill event for the same order may be journaled meanwhile, named as the live stream names it
(Alpaca: its ``execution_id``), while the recovered copy is named as the adapter names a fill it
recovers (``{order id}:{cum qty}``). Judged against the shortfall read before the wait, the
recovered copy still "fits", and the same execution was journaled twice under two names
(fixed: the shortfall is read again after the wait)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.base import BrokerOrder, Fill
from gateway.pipeline.fill_recovery import FillRecovery
from gateway.store.journal import Journal

TS = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def _fill(fill_id: str, qty: int, coid: str = "o1") -> Fill:
    return Fill(
        client_order_id=coid,
        broker_order_id="b1",
        symbol="AAPL",
        side="buy",
        quantity=qty,
        price="100",
        ts=TS,
        fill_id=fill_id,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    order = BrokerOrder(
        client_order_id="o1",
        broker_order_id="b1",
        symbol="AAPL",
        side="buy",
        quantity=10,
        filled_quantity=10,
        status="filled",
        avg_fill_price=100,
    )
    j.record_order_updates([(order, _fill("x1", 4), None)])
    yield j
    j.close()


def _sum(journal: Journal, coid: str = "o1") -> Decimal:
    return sum((f.quantity for f in journal.fills() if f.client_order_id == coid), Decimal(0))


class Racing:
    """Answers the executions; while "waiting" on the wire, the live event of the missing fill
    is journaled under the live stream's name."""

    name = "racing"

    def __init__(self, journal: Journal, told: list[Fill], live: list[Fill]):
        self.journal, self.told, self.live = journal, told, live

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        self.journal.record_fills(self.live)  # the live event lands during the request
        return [f for f in self.told if f.client_order_id in client_order_ids]


async def test_a_live_fill_landing_during_the_request_is_not_journaled_twice(
    journal: Journal,
) -> None:
    broker = Racing(journal, told=[_fill("x1", 4), _fill("b1:10", 6)], live=[_fill("exec-2", 6)])
    await FillRecovery(journal, broker).run()  # type: ignore[arg-type]
    assert _sum(journal) == 10, [(f.fill_id, f.quantity) for f in journal.fills()]


async def test_a_fill_listed_twice_by_the_broker_is_journaled_once(journal: Journal) -> None:
    class Twice:
        name = "twice"

        async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
            return [_fill("x1", 4), _fill("x2", 6), _fill("x2", 6)]

    await FillRecovery(journal, Twice()).run()  # type: ignore[arg-type]
    assert _sum(journal) <= 10


async def test_fills_of_orders_not_asked_for_are_not_taken(journal: Journal) -> None:
    class Chatty:
        name = "chatty"

        async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
            return [_fill("y1", 5, coid="someone-else"), _fill("x2", 6)]

    await FillRecovery(journal, Chatty()).run()  # type: ignore[arg-type]
    assert _sum(journal, "someone-else") == 0
    assert _sum(journal) == 10


async def test_a_broker_raising_an_unexpected_error_is_a_gap_not_a_crash(
    journal: Journal,
) -> None:
    class Broken:
        name = "broken"

        async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
            raise RuntimeError("adapter bug")

    recovery = FillRecovery(journal, Broken())  # type: ignore[arg-type]
    try:
        gaps = await recovery.run()
    except RuntimeError:
        pytest.fail("an adapter's unexpected error escaped fill recovery (a start would fail)")
    assert _sum(journal) == 4
    assert gaps and all("RuntimeError: adapter bug" in gap.reason for gap in gaps), gaps
