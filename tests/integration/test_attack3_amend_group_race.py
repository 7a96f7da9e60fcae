"""Cancels (DELETE) and replaces (PATCH) racing the group commit of the original order's intent.

Guarantees pinned (DESIGN "Orders a strategy manages": a cancel's intent is journaled before the
broker sees it; a replace keeps one live order per client_order_id, never two; "Durability
contract details (v2)": nothing is sent without its intent committed):
- a cancel or replace of an order whose intent is staged but not yet committed sends nothing to
  the broker for it (a 409: it is being submitted / not open), and does not stop the signal
  from completing; once placed, the cancel works and nothing rests;
- when that group is then lost (the COMMIT fails), the order never reaches the broker and the
  cancel's answer did not commit anything for it either (no cancel intent, no order row)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from gateway.errors import OrderNotOpen, OrderNotSettled
from gateway.models import OrderReplace
from gateway.pipeline.ids import client_order_id
from gateway.service import GatewayService
from gateway.store.schema import JournalUnavailable
from tests.integration.test_attack3_group_kill import _service, _staged, resting
from tests.journal_faults import CommitFails


async def test_cancel_and_replace_while_the_originals_intent_waits_for_its_group_commit(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service, broker = await _service(make_config, make_service, 0)
    tasks = [
        asyncio.create_task(service.engine.submit_signal(resting(f"ar-{i}", i))) for i in range(4)
    ]
    await _staged(service, tasks)
    coid = client_order_id("ar-0")
    with pytest.raises((OrderNotSettled, OrderNotOpen)):
        await service.engine.cancels.cancel(coid, None, "test")
    with pytest.raises((OrderNotSettled, OrderNotOpen)):
        await service.engine.replaces.replace(
            coid, OrderReplace(signal_id="ar-0-r", limit_price=151), None
        )
    answers = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(json.loads(a.decision_json)["decision"] == "accepted" for a in answers)
    assert dict(broker.submit_counts).get(coid) == 1
    # Placed now: the cancel works, the replace afterwards finds it final; nothing rests.
    view = await service.engine.cancels.cancel(coid, None, "test")
    assert view.status in ("canceled", "pending_cancel")
    at_broker = await broker.get_order(coid)
    assert at_broker is not None and not at_broker.is_open
    assert coid not in {o.client_order_id for o in await broker.open_orders()}


async def test_a_cancel_answered_from_a_staged_intent_whose_group_is_then_lost(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service: GatewayService
    service, broker = await _service(make_config, make_service, 0)
    assert isinstance(broker, SimulatedBroker)
    tasks = [
        asyncio.create_task(service.engine.submit_signal(resting(f"al-{i}", i))) for i in range(3)
    ]
    await _staged(service, tasks)
    journal = service.journal
    journal._tx.db = CommitFails(journal._db)  # type: ignore[assignment]
    coid = client_order_id("al-0")
    try:
        await service.engine.cancels.cancel(coid, None, "test")
    except (OrderNotSettled, OrderNotOpen, JournalUnavailable):
        pass
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, JournalUnavailable) for r in results), results
    assert dict(broker.submit_counts) == {}
    journal._tx.db = journal._db
    assert journal.probe()
    assert journal.signal("al-0") is None
    assert coid not in {o.client_order_id for o in journal.orders()}
