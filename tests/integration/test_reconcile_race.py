"""Reconciliation racing the gateway's own trading. The broker's answers to a reconciliation take
time to travel: an order may fill after the broker took its snapshot and before the answer
arrives. A fill the book applied meanwhile is not a difference: it must neither halt the
gateway, nor be undone by the stale snapshot, nor make one of our orders look external."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from brokers.base import Account, BrokerOrder, OrderRequest, Position
from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.models import Signal
from gateway.risk.book import Reservation
from gateway.service import GatewayService
from tests.conftest import signal

QUOTES = {"AAPL": (199.95, 200.05), "MSFT": (409.9, 410.1)}
D200 = Decimal(200)


class SlowAnswers(SimulatedBroker):
    """The broker takes its snapshot at once; the answers to the calls named in ``held`` arrive
    when ``travel`` is set (a slow network, as with any real broker)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.held: set[str] = set()
        self.travel = asyncio.Event()
        self.taken = asyncio.Event()

    async def _answer(self, call: str, snapshot: Any) -> Any:
        if call in self.held:
            self.taken.set()
            await self.travel.wait()
        return snapshot

    async def open_orders(self) -> list[BrokerOrder]:
        return await self._answer("open_orders", await super().open_orders())  # type: ignore[no-any-return]

    async def positions(self) -> list[Position]:
        return await self._answer("positions", await super().positions())  # type: ignore[no-any-return]

    async def account(self) -> Account:
        return await self._answer("account", await super().account())  # type: ignore[no-any-return]


async def _slow_reconcile(
    service: GatewayService, broker: SlowAnswers, held: str, meanwhile: Callable[[], Any]
) -> None:
    """Reconcile; once the broker took the snapshot of ``held``, trade (``meanwhile``), then
    let the answer arrive."""
    broker.held, broker.travel, broker.taken = {held}, asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(service.reconcile())
    await asyncio.wait_for(broker.taken.wait(), timeout=10)
    await meanwhile()
    broker.travel.set()
    await running
    broker.held = set()


async def test_a_fill_while_the_positions_travel_is_no_difference(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SlowAnswers(quotes=QUOTES, tick_s=0.2)
    service: GatewayService = await make_service(make_config(), broker=broker)

    async def buy() -> None:
        decision = await service.engine.submit_signal(Signal(**signal("fill", quantity=10)))
        assert '"status":"filled"' in decision.decision_json

    await _slow_reconcile(service, broker, "positions", buy)
    assert service.halt.current is None, service.halt.current
    assert service.engine.book.position_qty("AAPL") == 10  # not undone by the old snapshot
    assert service.status()["reconciliation"]["positions"] == []
    await service.reconcile()  # the next one, undisturbed, agrees
    assert service.status()["reconciliation"]["differences"] == 0


async def test_an_order_that_fills_while_the_open_orders_travel_stays_ours_and_final(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SlowAnswers(quotes=QUOTES, tick_s=0.2)
    service: GatewayService = await make_service(make_config(), broker=broker)
    resting = signal("rest", quantity=10, order_type="limit", limit_price=199, time_in_force="gtc")
    await service.engine.submit_signal(Signal(**resting))

    async def market_comes_down() -> None:
        _, filled = broker.set_quote("AAPL", 198.9, 199.0)
        for order in filled:
            service.engine.apply_order_update(order)

    await _slow_reconcile(service, broker, "open_orders", market_comes_down)
    status = service.status()
    assert status["reconciliation"]["adopted_orders"] == []
    assert service.engine.book.orders == {}  # filled, not resurrected as open
    assert [o.status for o in service.journal.orders()] == ["filled"]
    assert not any(o.external for o in service.journal.orders())
    assert service.halt.current is None, service.halt.current


async def test_a_fill_while_the_account_travels_keeps_the_cash_it_paid(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SlowAnswers(quotes=QUOTES, tick_s=0.2)
    service: GatewayService = await make_service(make_config(), broker=broker)

    async def buy() -> None:
        await service.engine.submit_signal(Signal(**signal("paid", quantity=10)))

    await _slow_reconcile(service, broker, "account", buy)
    assert service.engine.book.cash == (await broker.account()).cash  # not the older figure
    assert service.engine.book.position_qty("AAPL") == 10


async def test_an_order_placed_while_the_open_orders_travel_is_not_lost(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    broker = SlowAnswers(quotes=QUOTES, tick_s=0.2)
    service: GatewayService = await make_service(make_config(), broker=broker)
    resting = signal("new", quantity=1, order_type="limit", limit_price=190, time_in_force="gtc")

    async def place() -> None:
        await service.engine.submit_signal(Signal(**resting))

    await _slow_reconcile(service, broker, "open_orders", place)
    assert service.status()["reconciliation"]["lost_orders"] == []
    assert [o.status.value for o in service.engine.book.open_orders()] == ["accepted"]


async def test_a_symbol_whose_order_is_on_its_way_is_not_corrected_with_another(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config(gateway={"gateway": {"reconciliation": {"halt_tolerance": 0.1}}})
    service: GatewayService = await make_service(config)
    sim = service.broker
    assert isinstance(sim, SimulatedBroker)
    # An AAPL buy landed and filled; its answer is still on its way (the reservation holds it).
    request = OrderRequest(client_order_id="gw-flying", symbol="AAPL", side="buy", quantity=10)
    service.engine.book.reserve(Reservation("gw-flying", "AAPL", request.side, Decimal(10), D200))
    landed = await sim.submit(request)
    # Meanwhile MSFT differs: bought by hand at the broker.
    await sim.submit(OrderRequest(client_order_id="by-hand", symbol="MSFT", side="buy", quantity=5))
    await service.reconcile()
    assert service.engine.book.position_qty("MSFT") == 5  # corrected
    assert service.engine.book.position_qty("AAPL") == 0  # left to the answer
    service.engine.apply_order_update(landed)  # the answer arrives
    assert service.engine.book.position_qty("AAPL") == 10  # once
