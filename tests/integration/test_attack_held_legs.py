"""Attack: a bracket whose entry rests (a passive limit buy) has its legs held by the broker;
they protect nothing until it fills. A position already held in the symbol was shown as
protected by that held stop, its risk counted to a stop that is not working at the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import api_client, signal


async def test_a_held_stop_of_a_resting_entry_does_not_protect_the_position_already_held(
    service: Any,
) -> None:
    async with api_client(service) as client:
        plain = (await client.post("/v1/signals", json=signal("hl-1", quantity=10))).json()
        assert plain["decision"] == "accepted" and plain["order"]["status"] == "filled"
        body = signal(
            "hl-2", quantity=10, order_type="limit", limit_price=199, stop_loss_price=198.9
        )
        resting = (await client.post("/v1/signals", json=body)).json()
        assert resting["decision"] == "accepted", resting
        assert resting["order"]["status"] == "accepted"  # it rests: its legs are held
        await asyncio.sleep(0.1)
        status = (await client.get("/v1/status")).json()
        (row,) = status["protection"]
        assert row["symbol"] == "AAPL" and row["qty"] == 10.0
        assert row["protected"] is False and row["protected_qty"] == 0.0, row
        assert row["stop_prices"] == [], row
        # Counted at stop_loss_percent (3% of 10 x the mark), not to the held stop (10 x 1.1).
        assert abs(row["at_risk"] - 10 * 200.0 * 0.03) < 0.01, row
        # Nothing was lost either: no stop ever worked for this position.
        assert service.protection.check() == []
        assert service.journal.events("protection_lost") == []
