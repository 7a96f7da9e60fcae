"""A restarted gateway asks Alpaca for the fills of its orders by client_order_id (the stream's
catch-up covers only a drop within one process): one look-up per order, then the FILL
activities since the earliest submit, kept for these orders only, each named as the adapter
names a recovered fill (``{order id}:{cumulative qty}``). An order Alpaca does not know is
simply absent (replayed from cassettes/alpaca/lifecycle_executions.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from alpaca_helpers import WITH_QUERY, make_vcr, played

from brokers.alpaca.broker import AlpacaBroker
from brokers.retrying import RetryingBroker

ORDER = "5b1f3a2c-7d4e-4f60-9a8b-0c1d2e3f0501"


async def test_the_fills_of_an_order_are_read_back_after_a_restart(
    make_broker: Callable[..., AlpacaBroker],
) -> None:
    broker = RetryingBroker(make_broker())  # as the gateway holds it
    with make_vcr(WITH_QUERY).use_cassette("lifecycle_executions.yaml") as cassette:
        told = await broker.executions(["sig-lost-1", "sig-unknown"])
        assert played(cassette) == 3
        asked = cassette.requests[2].uri
        assert "after=2023-11-06T15%3A37%3A59.100000Z" in asked  # a second before the submit
    assert [(f.fill_id, f.quantity, f.price) for f in told] == [
        (f"{ORDER}:5", Decimal(5), Decimal("200.05")),
        (f"{ORDER}:10", Decimal(5), Decimal("200.06")),
    ]  # another order's activity in the same page is not one of these
    assert {(f.client_order_id, f.broker_order_id, f.symbol, f.side.value) for f in told} == {
        ("sig-lost-1", ORDER, "AAPL", "buy")
    }
    assert told[0].ts == datetime(2023, 11, 6, 15, 38, 0, 200000, tzinfo=UTC)
