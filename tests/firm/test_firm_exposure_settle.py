"""The firm exposure's bookkeeping, in process against a real PostgreSQL: nothing counted twice,
nothing counted nowhere, reservations given back and stale ones swept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import psycopg
import pytest

from gateway.config import FirmSettings
from gateway.firm.control import FirmControl
from gateway.firm.exposure import Figures, FirmExposure
from gateway.firm.link import FirmLink

D = Decimal


class Book:
    """What the gateway's book would report."""

    def __init__(self) -> None:
        self.figures: Figures | None = None

    def set(self, gross: int, in_flight: set[str]) -> None:
        self.figures = Figures("active", D(100000), D(gross), D(0), frozenset(in_flight))


@pytest.fixture
async def setup(firm_dsn: str) -> AsyncIterator[tuple[FirmExposure, Book, FirmLink]]:
    settings = FirmSettings(gateway_id="g", grace_s=5)
    heard: list[FirmControl] = []
    link = FirmLink(settings, firm_dsn, on_control=heard.append, on_lost=lambda why: None)
    await link.open()
    book = Book()
    exposure = FirmExposure(
        link, gateway_id="g", account="g", limit=D(5000), figures=lambda: book.figures
    )
    await exposure.register()
    try:
        yield exposure, book, link
    finally:
        await link.close()


def reservations(dsn: str) -> dict[str, Decimal]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT client_order_id, amount FROM firm_reservations").fetchall()
    return {coid: amount for coid, amount in rows}


async def test_counted_once_whether_the_row_or_a_reservation_holds_it(
    setup: tuple[FirmExposure, Book, FirmLink], firm_dsn: str
) -> None:
    exposure, book, _ = setup
    # A's exposure is in the book (in flight) when the row is published, before its check ran.
    book.set(2000, {"A"})
    await exposure.publish()
    assert await exposure.reserve("A", D(2000)) is None
    assert reservations(firm_dsn) == {}  # pre-counted: the row has it
    assert await exposure.reserve("B", D(2000)) is None  # 2000 + 2000 <= 5000
    assert reservations(firm_dsn) == {"B": D(2000)}
    refused = await exposure.reserve("C", D(2000))  # 4000 + 2000 > 5000
    assert refused is not None and "max_gross_exposure 5000" in refused

    # The next row counts A and B: B's reservation is settled in the same transaction.
    book.set(4000, {"A", "B"})
    await exposure.publish()
    assert reservations(firm_dsn) == {}
    assert await exposure.reserve("D", D(1000)) is None  # exactly at the limit
    assert await exposure.reserve("E", D("0.01")) is not None


async def test_released_and_stale_reservations_go(
    setup: tuple[FirmExposure, Book, FirmLink], firm_dsn: str
) -> None:
    exposure, book, link = setup
    assert await exposure.reserve("A", D(3000)) is None
    exposure.release("A")  # the order never left
    await asyncio.sleep(0)  # the release's delete takes the session first...
    async with link.work() as conn:  # ...so it ran before this turn
        await conn.execute("SELECT 1")
    assert reservations(firm_dsn) == {}
    assert await exposure.reserve("B", D(5000)) is None  # the room is back

    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO firm_reservations (gateway_id, client_order_id, amount, at) "
            "VALUES ('g', 'from-an-earlier-run', 100, now() - interval '1 hour'), "
            "('h', 'another-gateway', 100, now() - interval '1 hour')"
        )
    book.set(5000, set())
    await exposure.publish()
    # B settled into the row; the earlier run's reservation swept; another gateway's kept.
    assert reservations(firm_dsn) == {"another-gateway": D(100)}


async def test_every_gateways_row_and_reservations_count(
    setup: tuple[FirmExposure, Book, FirmLink], firm_dsn: str
) -> None:
    exposure, _book, _ = setup
    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO firm_gateways (gateway_id, account, gross_exposure) VALUES ('h', 'h', 3000)"
        )
        conn.execute(
            "INSERT INTO firm_reservations (gateway_id, client_order_id, amount) "
            "VALUES ('h', 'x', 1500)"
        )
    assert await exposure.reserve("A", D(600)) is not None  # 3000 + 1500 + 600 > 5000
    assert await exposure.reserve("A", D(500)) is None


async def test_without_a_limit_nothing_is_asked(firm_dsn: str) -> None:
    settings = FirmSettings(gateway_id="g")
    link = FirmLink(settings, firm_dsn, on_control=lambda c: None, on_lost=lambda why: None)
    exposure = FirmExposure(link, gateway_id="g", account="g", limit=None, figures=lambda: None)
    assert await exposure.reserve("A", D(10**12)) is None  # the link is not even open
