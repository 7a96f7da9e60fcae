"""fill_recovery takes from the broker only fills it can recognise: each with the broker's id,
none journaled twice, never more than the order is missing (ids that do not line up with the
journal's could count a fill twice: then nothing is taken and the gap is reported), and a
broker that cannot tell leaves a gap reported once per process, never a made-up fill."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.base import BrokerOrder, Fill
from brokers.errors import BrokerUnavailable
from gateway.pipeline.fill_recovery import FillRecovery
from gateway.store.journal import Journal

TS = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def _fill(fill_id: str, qty: int, price: str = "100", coid: str = "o1") -> Fill:
    return Fill(
        client_order_id=coid,
        broker_order_id="b1",
        symbol="AAPL",
        side="buy",
        quantity=qty,
        price=price,
        ts=TS,
        fill_id=fill_id,
    )


class Teller:
    """A broker that tells what it is given (or fails)."""

    name = "teller"

    def __init__(self, fills: list[Fill] | None = None, fail: bool = False):
        self.fills = fills or []
        self.fail = fail
        self.asked: list[list[str]] = []

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        self.asked.append(list(client_order_ids))
        if self.fail:
            raise BrokerUnavailable("down")
        return [f for f in self.fills if f.client_order_id in client_order_ids]


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


def _ids(journal: Journal) -> list[tuple[str, Decimal]]:
    return [(f.fill_id, f.quantity) for f in journal.fills()]


async def test_only_the_missing_fills_are_taken_once(journal: Journal) -> None:
    broker = Teller([_fill("x1", 4), _fill("x2", 6, "101")])
    recovery = FillRecovery(journal, broker)  # type: ignore[arg-type]
    assert await recovery.run() == []
    assert await recovery.run() == []  # nothing short any more: the broker is not asked
    assert _ids(journal) == [("x1", Decimal(4)), ("x2", Decimal(6))]
    assert broker.asked == [["o1"]]
    assert journal.events("fill_gap") == []


async def test_ids_that_do_not_line_up_take_nothing_and_report(journal: Journal) -> None:
    broker = Teller([_fill("other-1", 4), _fill("other-2", 6)])  # 10 told, 6 missing
    [gap] = await FillRecovery(journal, broker).run()  # type: ignore[arg-type]
    assert (gap.missing, gap.reason) == (
        Decimal(6),
        "the broker's executions do not match the journaled fills",
    )
    assert _ids(journal) == [("x1", Decimal(4))]
    assert [e["missing_quantity"] for e in journal.events("fill_gap")] == ["6"]


async def test_a_broker_that_cannot_tell_leaves_a_gap_reported_once(journal: Journal) -> None:
    recovery = FillRecovery(journal, Teller(fail=True))  # type: ignore[arg-type]
    [gap] = await recovery.run()
    assert gap.reason.startswith("executions could not be read")
    await recovery.run()
    assert len(journal.events("fill_gap")) == 1  # the same gap, once per process
    assert _ids(journal) == [("x1", Decimal(4))]


async def test_a_broker_without_executions_is_a_gap(journal: Journal) -> None:
    class Bare:
        name = "bare"

    [gap] = await FillRecovery(journal, Bare()).run()  # type: ignore[arg-type]
    assert "cannot list executions" in gap.reason and gap.missing == 6
