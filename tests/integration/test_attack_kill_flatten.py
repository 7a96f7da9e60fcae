"""Attack: the kill switch with flatten_positions, when a bracket's stop will not cancel.

Flattening a position whose stop still rests at the broker is exactly the bug the contract
forbids (freqtrade #12528, #11608): the position is closed at market, the stop stays, and when
the market reaches it, it sells into a position that is gone, opening a short."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers.base import CancelReport
from brokers.errors import BrokerError
from brokers.simulated.broker import SimulatedBroker
from tests.conftest import api_client, signal


async def test_flatten_leaves_a_position_alone_while_its_stop_still_rests(
    make_config: Any, make_service: Any
) -> None:
    service = await make_service(
        make_config(risk={"emergency": {"kill_switch": {"flatten_positions": True}}})
    )
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    book = service.engine.book
    async with api_client(service) as client:
        body = signal("kf-1", quantity=10, stop_loss_price=190)
        entry = (await client.post("/v1/signals", json=body)).json()["order"]["client_order_id"]
        stop = entry + "-sl"
        for _ in range(300):
            tracked = book.orders.get(stop)
            if tracked is not None and tracked.order.status.value == "accepted":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the stop never worked")
        # The broker will not cancel the stop (an outage on that one order).
        real_cancel, real_cancel_all = broker.cancel, broker.cancel_all

        async def cancel(client_order_id: str) -> None:
            if client_order_id == stop:
                raise BrokerError("cancel refused: try later")
            await real_cancel(client_order_id)

        async def cancel_all() -> CancelReport:
            open_ids = [o.broker_order_id for o in await broker.open_orders()]
            return CancelReport(failed=dict.fromkeys(open_ids, "cancel refused: try later"))

        broker.cancel = cancel  # type: ignore[method-assign]
        broker.cancel_all = cancel_all  # type: ignore[method-assign]
        report = (await client.post("/v1/kill", json={"reason": "drill"})).json()
        broker.cancel, broker.cancel_all = real_cancel, real_cancel_all  # type: ignore[method-assign]
        assert report["failed"], report
        # Not flattened: the stop still protects the long it was made for, and says why.
        assert report["flattened"] == [], report
        assert "AAPL" in report["flatten_failed"], report
        positions = await broker.positions()
        assert [(p.symbol, p.qty) for p in positions] == [("AAPL", 10)]
        # The market falls through the stop: it closes the long, it never opens a short.
        broker.set_quote("AAPL", bid=185.0, ask=185.1)
        await asyncio.sleep(0.2)
        assert [p.qty for p in await broker.positions()] in ([], [0])
