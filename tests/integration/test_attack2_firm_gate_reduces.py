"""Attack: the firm exposure limit skips only orders that really shrink a held position.

``reserve_outside(..., reduces=...)`` lets an order through the firm's gate without asking for
room when it "only shrinks a position". The engine judges that against the position *including
pending orders*: with shorts allowed, a resting buy that has not filled makes a sell of the same
size look like a close, so the sell opens a short without the firm ever being asked. If the buy
never fills (it rests, or is cancelled) the firm holds a short it never gave room for, and the
firm limit can be passed by as much as every gateway's resting buys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from gateway.config import GatewayConfig
from tests.conftest import api_client, signal


class RecordingGate:
    """An ExposureGate that grants everything and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Decimal]] = []

    async def reserve(self, client_order_id: str, amount: Decimal) -> str | None:
        self.asked.append((client_order_id, amount))
        return None

    def release(self, client_order_id: str) -> None:
        pass


async def _gated(make_config: Callable[..., GatewayConfig], make_service: Any) -> Any:
    config = make_config(risk={"pre_trade": {"allow_short": True}})
    service = await make_service(config)
    gate = RecordingGate()
    service.engine.exposure_gate = gate
    return service, gate


async def test_a_sell_that_closes_a_held_position_asks_the_firm_for_nothing(
    make_config: Callable[..., GatewayConfig], make_service: Any
) -> None:
    service, gate = await _gated(make_config, make_service)
    async with api_client(service) as client:
        bought = await client.post("/v1/signals", json=signal("a2-fg-buy", quantity=10))
        assert bought.json()["decision"] == "accepted", bought.text
        for _ in range(200):
            service.engine.flush_order_updates()
            if service.engine.book.position_qty("AAPL") == 10:
                break
            await asyncio.sleep(0.01)
        assert service.engine.book.position_qty("AAPL") == 10
        asked_before = len(gate.asked)
        sold = await client.post(
            "/v1/signals", json=signal("a2-fg-close", side="sell", quantity=10)
        )
    assert sold.json()["decision"] == "accepted", sold.text
    assert len(gate.asked) == asked_before  # a real close: no room asked


async def test_a_sell_against_a_resting_buy_is_not_a_close(
    make_config: Callable[..., GatewayConfig], make_service: Any
) -> None:
    service, gate = await _gated(make_config, make_service)
    async with api_client(service) as client:
        resting = await client.post(
            "/v1/signals",
            json=signal("a2-fg-rest", quantity=10, order_type="limit", limit_price=198),
        )
        assert resting.json()["decision"] == "accepted", resting.text
        assert service.engine.book.position_qty("AAPL") == 0  # nothing held: the buy rests
        asked_before = len(gate.asked)
        sold = await client.post(
            "/v1/signals", json=signal("a2-fg-short", side="sell", quantity=10)
        )
    assert sold.json()["decision"] == "accepted", sold.text
    # The sell opens a short of 10 (nothing is held): it adds exposure and must ask for room.
    assert len(gate.asked) == asked_before + 1, gate.asked
