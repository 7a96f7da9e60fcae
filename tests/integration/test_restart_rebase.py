"""At start the journal's open orders take the broker's state of that moment, and the journal
records the change: the gateway may have died after the broker moved an order on (accepted it,
filled part of it) and before that event reached the journal."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from gateway.store.statedir import JOURNAL_FILE
from tests.conftest import api_client, signal


async def test_an_order_the_broker_moved_on_while_down_is_journaled_as_the_broker_has_it(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    first: GatewayService = await make_service(config)
    resting = signal("rest", order_type="limit", limit_price=150, time_in_force="gtc")
    async with api_client(first) as client:
        answer = (await client.post("/v1/signals", json=resting)).json()
    coid = answer["order"]["client_order_id"]
    await first.stop()
    # The journal last heard of the order as `new`: its `accepted` event was never written.
    journal_file = Path(config.gateway.state_dir) / JOURNAL_FILE
    with sqlite3.connect(journal_file) as db:
        db.execute("UPDATE orders SET status='new' WHERE client_order_id=?", (coid,))

    again: GatewayService = await make_service(config)
    [order] = again.journal.orders()
    assert (order.client_order_id, order.status) == (coid, "accepted")
    with sqlite3.connect(journal_file) as db:
        details = [
            row[0]
            for row in db.execute(
                "SELECT detail FROM order_events WHERE client_order_id=? AND status='accepted'",
                (coid,),
            )
        ]
    assert "at the broker when the gateway started" in details
    assert again.engine.book.orders[coid].order.status.value == "accepted"
