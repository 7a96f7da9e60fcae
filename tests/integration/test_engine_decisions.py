"""The engine's own steps, through the service production runs: a quote refusal that still lists
an oversized quantity, an order of unknown fate found never placed, and the reservation an
order holds until the broker's answer says it will not rest."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import pytest

from brokers.base import BrokerOrder, CancelReport, OrderRequest, Quote
from brokers.errors import BrokerError, BrokerUnavailable, NotSent
from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.pipeline.ids import client_order_id
from gateway.safety.halt_state import HaltTrigger
from gateway.service import GatewayService
from gateway.store.schema import JournalUnavailable
from tests.journal_faults import DECISION, install


class UntranslatedErrorBroker(SimulatedBroker):
    """An adapter whose submit fails in a way it did not translate (the request may have left);
    the order never reached this market."""

    def __init__(self) -> None:
        super().__init__(quotes={"AAPL": (199.95, 200.05)}, tick_s=0.2)
        self.failing = False

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        if self.failing:
            raise RuntimeError("adapter bug")
        return await super().submit(order)


def buy(signal_id: str, quantity: int, symbol: str = "AAPL") -> Signal:
    return Signal(
        signal_id=signal_id, strategy="momentum", symbol=symbol, side="buy", quantity=quantity
    )


def order_events(service: GatewayService, coid: str) -> list[tuple[str, str | None]]:
    reader = sqlite3.connect(service.config.gateway.state_dir / "journal.sqlite3")
    try:
        rows = reader.execute(
            "SELECT status, detail FROM order_events WHERE client_order_id=? ORDER BY rowid",
            (coid,),
        ).fetchall()
    finally:
        reader.close()
    return [(str(s), d) for s, d in rows]


async def decide(service: GatewayService, signal: Signal) -> dict[str, Any]:
    return dict(json.loads((await service.engine.submit_signal(signal)).decision_json))


async def test_without_a_quote_an_order_at_max_quantity_is_refused_for_the_quote_alone(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config(risk={"pre_trade": {"max_order_quantity": 100}}))
    at_limit = await decide(service, buy("q-1", 100, symbol="TSLA"))
    assert [r["code"] for r in at_limit["reasons"]] == ["quote_missing"]
    beyond = await decide(service, buy("q-2", 101, symbol="TSLA"))
    assert [r["code"] for r in beyond["reasons"]] == ["quote_missing", "max_order_quantity"]
    message = beyond["reasons"][1]["message"]
    assert "101" in message and "100" in message
    assert beyond["decision"] == "rejected"


async def test_an_order_of_unknown_fate_found_never_placed_is_rejected_and_released(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = UntranslatedErrorBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    await decide(service, buy("warm-up", 1))  # the quote is streamed from here on
    broker.failing = True
    decision = await decide(service, buy("u-1", 10))
    coid = client_order_id("u-1")
    assert decision["decision"] == "accepted"
    assert [r["code"] for r in decision["reasons"]] == ["broker_answer_unknown"]
    await service.engine.unknown.look_up_all()  # (or the background look-up did already)
    assert coid not in service.engine.book.reservations
    assert coid not in service.engine.unknown.pending
    [(status, detail)] = order_events(service, coid)
    assert status == "rejected"
    assert detail and "no such order" in detail


async def test_a_decision_journaled_late_journals_its_order_as_it_is_now(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """The decision's commit failed (taking the order's state with it); the replay that
    journals the decision journals the order's present state too."""
    service: GatewayService = await make_service(make_config())
    install(service.journal, carrying=(DECISION,))
    resting = Signal(
        signal_id="late",
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    with pytest.raises(JournalUnavailable):
        await service.engine.submit_signal(resting)
    assert service.journal.probe()
    replay = await service.engine.submit_signal(resting)
    assert replay.replayed
    assert [o.status for o in service.journal.orders()] == ["accepted"]
    assert order_events(service, client_order_id("late"))[-1] == (
        "accepted",
        "journaled after an outage",
    )


async def test_a_lost_answer_whose_order_the_broker_already_reported_is_not_unknown(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """The broker's event placed the order while the look-ups after the lost answer failed:
    its fate is known, and the status lists nothing of unknown fate."""
    service: GatewayService = await make_service(make_config())
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    await decide(service, buy("warm-up", 1))
    broker.set_faults(Faults(lose_submit_answers=1, fail_lookups_s=60))
    decision = await decide(
        service,
        Signal(
            signal_id="l-1",
            strategy="momentum",
            symbol="AAPL",
            side="buy",
            quantity=1,
            order_type="limit",
            limit_price=150,
            time_in_force="gtc",
        ),
    )
    assert [r["code"] for r in decision["reasons"]] == ["broker_answer_unknown"]
    assert client_order_id("l-1") in [o.client_order_id for o in service.open_orders()]
    assert service.engine.unknown.pending == []
    assert service.status()["orders"]["unknown"] == []


class SnapshotOnlyBroker(SimulatedBroker):
    """A market that streams nothing on its own (a tick an hour): a symbol's first quote is the
    snapshot the engine asks for. ``stream_meanwhile`` moves the market while it answers."""

    def __init__(self) -> None:
        super().__init__(quotes={"AAPL": (199.95, 200.05)}, tick_s=3600)
        self.subscribed: list[list[str]] = []
        self.snapshots = 0
        self.stream_meanwhile: tuple[float, float] | None = None
        self.quote_error: str | None = None

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        self.subscribed.append(list(symbols))
        super().subscribe_quotes(symbols)

    async def quote(self, symbol: str) -> Quote:
        self.snapshots += 1
        if self.quote_error is not None:
            raise BrokerError(self.quote_error)
        snapshot = await super().quote(symbol)
        if self.stream_meanwhile is not None:
            self.set_quote(symbol, *self.stream_meanwhile)  # streamed, and received first
        return snapshot


async def test_a_first_signal_is_priced_from_the_snapshot_and_its_symbol_subscribed(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SnapshotOnlyBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    decision = await decide(service, buy("s-1", 1))
    assert decision["decision"] == "accepted"
    assert decision["order"]["price"] == 200.05
    assert ["AAPL"] in broker.subscribed
    # From then on the book has a quote: the next signal asks the broker for none.
    await decide(service, buy("s-2", 1))
    assert broker.snapshots == 1


async def test_a_quote_streamed_while_the_snapshot_was_on_its_way_wins(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SnapshotOnlyBroker()
    broker.stream_meanwhile = (209.95, 210.05)
    service: GatewayService = await make_service(make_config(), broker=broker)
    original = service.quotes.update
    streamed = asyncio.Event()

    def update(quote: Quote) -> Any:
        answer = original(quote)
        if quote.ask == Decimal("210.05"):
            streamed.set()
        return answer

    service.quotes.update = update  # type: ignore[method-assign]
    real_quote = SnapshotOnlyBroker.quote

    async def quote_after_the_stream(self: SnapshotOnlyBroker, symbol: str) -> Quote:
        snapshot = await real_quote(self, symbol)
        await streamed.wait()  # the streamed quote reached the book before the snapshot
        return snapshot

    broker.quote = quote_after_the_stream.__get__(broker)  # type: ignore[method-assign]
    decision = await decide(service, buy("s-1", 1))
    assert decision["order"]["price"] == 210.05


async def test_a_snapshot_that_fails_leaves_the_signal_refused_for_a_missing_quote(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = SnapshotOnlyBroker()
    broker.quote_error = "market data down"
    service: GatewayService = await make_service(make_config(), broker=broker)
    with caplog.at_level(logging.INFO, logger="gateway.pipeline.engine"):
        decision = await decide(service, buy("s-1", 1))
    assert decision["decision"] == "rejected"
    assert [r["code"] for r in decision["reasons"]] == ["quote_missing"]
    [record] = [r for r in caplog.records if "snapshot" in r.getMessage()]
    assert record.getMessage() == "no quote snapshot for AAPL: market data down"
    assert record.symbol == "AAPL"  # type: ignore[attr-defined]


async def test_the_snapshot_is_given_two_seconds(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A market-data link that hangs costs a signal two seconds, then it is quote_missing."""
    broker = SnapshotOnlyBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    bounds: list[float | None] = []
    real_wait_for = asyncio.wait_for

    async def recording_wait_for(awaitable: Any, **bound: float | None) -> Any:
        bounds.append(bound.get("timeout"))
        return await real_wait_for(awaitable, **bound)

    monkeypatch.setattr("gateway.pipeline.quoting.asyncio.wait_for", recording_wait_for)
    await decide(service, buy("s-1", 1))
    assert bounds == [2.0]


async def test_a_refusal_by_the_risk_checks_or_the_broker_keeps_the_risk_it_was_judged_on(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    service: GatewayService = await make_service(make_config())
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    too_big = await decide(service, buy("r-1", 334))  # over 2% position risk at a 3% stop
    assert [r["code"] for r in too_big["reasons"]] == ["position_risk"]
    assert too_big["risk"]["equity"] == 100000.0
    assert too_big["risk"]["position_risk"] > 0.02
    broker.set_faults(Faults(reject_submits=1))
    with caplog.at_level(logging.INFO, logger="gateway.pipeline.engine"):
        refused = await decide(service, buy("r-2", 10))
    [line] = [r for r in caplog.records if r.getMessage() == "signal rejected broker_rejected"]
    assert line.elapsed_us >= 0  # type: ignore[attr-defined]
    assert refused["decision"] == "rejected"
    assert [r["code"] for r in refused["reasons"]] == ["broker_rejected"]
    assert refused["risk"]["equity"] == 100000.0
    assert refused["risk"]["heat_after"] > refused["risk"]["heat_before"]
    assert service.engine.book.reservations == {}


async def test_a_start_quotes_and_subscribes_every_symbol_held_or_resting(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    broker = SnapshotOnlyBroker()
    broker.set_quote("MSFT", 409.9, 410.1)
    before: GatewayService = await make_service(config, broker=broker)
    resting = Signal(
        signal_id="x-1",
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    assert (await decide(before, resting))["order"]["status"] == "accepted"
    assert (await decide(before, buy("x-2", 5, symbol="MSFT")))["order"]["status"] == "filled"
    await before.stop()
    broker.subscribed.clear()
    service: GatewayService = await make_service(config, broker=broker)
    assert broker.subscribed[0] == ["AAPL", "MSFT"]  # the resting order's, the position's
    # Buying power starts at the broker's figure, which counts the resting order already.
    assert service.engine.buying_power() == (await broker.account()).buying_power
    assert service.quotes.get("AAPL") is not None
    assert service.quotes.get("MSFT") is not None


async def test_buying_power_moves_with_the_gateways_own_orders_and_fills(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SnapshotOnlyBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    at_start = (await broker.account()).buying_power
    assert service.engine.buying_power() == at_start
    resting = Signal(
        signal_id="bp-1",
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=10,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    assert (await decide(service, resting))["decision"] == "accepted"
    assert service.engine.buying_power() == at_start - Decimal(1500)
    filled = await decide(service, buy("bp-2", 1))
    assert filled["order"]["status"] == "filled"
    assert service.engine.buying_power() == at_start - Decimal(1500) - Decimal("200.05")


async def test_the_intent_keeps_the_signal_and_the_price_the_order_was_valued_at(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService = await make_service(make_config())
    resting = Signal(
        signal_id="v-1",
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=3,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    await decide(service, resting)
    reader = sqlite3.connect(service.config.gateway.state_dir / "journal.sqlite3")
    try:
        signal_row = reader.execute(
            "SELECT strategy, symbol, body, client_order_id FROM signals WHERE signal_id='v-1'"
        ).fetchone()
        order_row = reader.execute(
            "SELECT symbol, side, quantity, order_type, limit_price, time_in_force, valued_at "
            "FROM orders WHERE signal_id='v-1'"
        ).fetchone()
    finally:
        reader.close()
    strategy, symbol, body, coid = signal_row
    assert (strategy, symbol, coid) == ("momentum", "AAPL", client_order_id("v-1"))
    assert Signal.model_validate_json(body) == resting
    assert order_row == ("AAPL", "buy", "3", "limit", "150", "gtc", "150")
    [at_broker] = await service.broker.open_orders()
    assert (at_broker.client_order_id, at_broker.time_in_force.value) == (coid, "gtc")


class CountingLookups(UntranslatedErrorBroker):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.lookups_fail = False

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self.lookups += 1
        if self.lookups_fail:
            raise BrokerUnavailable("look-up link down")
        return await super().get_order(client_order_id)


async def test_orders_of_unknown_fate_are_looked_up_once_per_round_on_the_adapter_itself(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """The settling has its own backoff between rounds: it does not go through the retry
    layer's, which would ask several times in each round."""
    broker = CountingLookups()
    service: GatewayService = await make_service(make_config(), broker=broker)
    await decide(service, buy("warm-up", 1))
    broker.failing = True
    await decide(service, buy("u-1", 1))
    broker.lookups_fail = True
    before = broker.lookups
    await service.engine.unknown.look_up_all()
    assert broker.lookups - before == len(service.engine.unknown.pending) == 1


async def test_an_accepted_order_is_journaled_once_with_its_decision(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService = await make_service(make_config())
    resting = Signal(
        signal_id="j-1",
        strategy="momentum",
        symbol="AAPL",
        side="buy",
        quantity=1,
        order_type="limit",
        limit_price=150,
        time_in_force="gtc",
    )
    decision = await decide(service, resting)
    service.engine.flush_order_updates()
    assert [status for status, _ in order_events(service, client_order_id("j-1"))] == [
        decision["order"]["status"]
    ]


class UnreachableBroker(UntranslatedErrorBroker):
    """Its link is down: a submit never leaves (NotSent), so it certainly did not land."""

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        if self.failing:
            raise NotSent("link down")
        return await super().submit(order)


async def test_an_unreachable_broker_is_counted_against_the_strategy_that_sent(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = UnreachableBroker()
    service: GatewayService = await make_service(make_config(), broker=broker)
    await decide(service, buy("warm-up", 1))
    broker.failing = True
    decision = await decide(service, buy("n-1", 1))
    assert decision["decision"] == "rejected"
    assert [r["code"] for r in decision["reasons"]] == ["broker_unavailable"]
    assert service.failures.consecutive_for("momentum") == 1
    assert service.engine.book.reservations == {}


async def test_an_accepted_signal_is_counted_and_logged_with_its_ids(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    service: GatewayService = await make_service(make_config())
    with caplog.at_level(logging.INFO, logger="gateway.pipeline.engine"):
        await decide(service, buy("m-1", 1))
    registry = service.metrics.registry
    counted = {"decision": "accepted", "reason": "none"}
    assert registry.get_sample_value("gateway_signals_total", counted) == 1
    [line] = [r for r in caplog.records if r.getMessage() == "signal accepted ok"]
    assert (line.signal_id, line.strategy, line.client_order_id) == (  # type: ignore[attr-defined]
        "m-1",
        "momentum",
        client_order_id("m-1"),
    )
    assert line.elapsed_us >= 0  # type: ignore[attr-defined]


class SlowCancelAll(UntranslatedErrorBroker):
    """cancel_all (the cancel on shutdown) waits until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelling = asyncio.Event()
        self.finish = asyncio.Event()

    async def cancel_all(self) -> CancelReport:
        self.cancelling.set()
        await self.finish.wait()
        return await super().cancel_all()


async def test_a_signal_arriving_while_the_gateway_stops_is_blocked_shutting_down(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SlowCancelAll()
    service: GatewayService = await make_service(
        make_config({"gateway": {"cancel_on_shutdown": True}}), broker=broker
    )
    stopping = asyncio.create_task(service.stop())
    await broker.cancelling.wait()  # the stop has begun; the engine still answers
    decision = await decide(service, buy("late", 1))
    broker.finish.set()
    await stopping
    assert decision["decision"] == "blocked"
    assert [r["code"] for r in decision["reasons"]] == ["shutting_down"]


async def test_every_refusal_is_logged_with_the_time_it_took(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    service: GatewayService = await make_service(make_config())
    with caplog.at_level(logging.INFO, logger="gateway.pipeline.engine"):
        await decide(service, buy("no-quote", 1, symbol="TSLA"))  # refused when priced
        await decide(service, buy("too-big", 334))  # refused by the risk checks
        service.halt.halt("desk", HaltTrigger.MANUAL, by="test")
        await decide(service, buy("halted", 1))  # refused at the gates
    lines = [r for r in caplog.records if r.getMessage().startswith("signal ")]
    assert [r.signal_id for r in lines] == ["no-quote", "too-big", "halted"]  # type: ignore[attr-defined]
    assert all(r.elapsed_us >= 0 for r in lines)  # type: ignore[attr-defined]


async def test_an_order_on_the_wire_counts_as_pending_on_its_symbol(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """Reserved before it is sent: concurrent signals see it (reduce-only, heat)."""
    broker = HeldSubmits()
    service: GatewayService = await make_service(make_config(), broker=broker)
    sending = asyncio.create_task(decide(service, buy("p-1", 7)))
    await broker.entered.wait()
    book = service.engine.book
    assert book.pending_qty("AAPL") == 7
    assert book.open_buy_notional() == Decimal(7) * Decimal("200.05")
    broker.release.set()
    await sending


class HeldSubmits(UntranslatedErrorBroker):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        self.entered.set()
        await self.release.wait()
        return await super().submit(order)


async def test_a_start_whose_quote_snapshots_fail_still_completes(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    """Quotes are fetched for held symbols as a courtesy: the stream brings them later."""
    config = make_config()
    broker = SnapshotOnlyBroker()
    before: GatewayService = await make_service(config, broker=broker)
    assert (await decide(before, buy("h-1", 5)))["order"]["status"] == "filled"
    await before.stop()
    broker.quote_error = "market data down"
    service: GatewayService = await make_service(config, broker=broker)
    assert service.engine.ready
    assert service.quotes.get("AAPL") is None
