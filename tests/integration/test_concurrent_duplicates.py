"""A signal_id sent again while the first is still being decided: the same body gets the first
decision (a replay), another body is 409, never another body's decision."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from brokers.simulated import SimulatedBroker
from brokers.simulated.faults import Faults
from gateway.config import GatewayConfig
from tests.conftest import api_client, signal


async def test_duplicates_racing_the_first_are_checked_against_its_body(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config())
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_faults(Faults(latency_ms=200))  # the first is on the wire while the others come
    async with api_client(service) as client:
        same = signal("race", quantity=10)
        sending = asyncio.create_task(client.post("/v1/signals", json=same))
        while service.engine.sender.in_flight == 0:  # noqa: ASYNC110 - polled state, no event
            await asyncio.sleep(0.005)
        bodies = [same] * 20 + [signal("race", quantity=11 + n) for n in range(20)]
        answers = await asyncio.gather(*(client.post("/v1/signals", json=b) for b in bodies))
        first = await sending
    rest, others = answers[:20], answers[20:]
    assert first.status_code == 200 and first.json()["decision"] == "accepted"
    assert "Idempotent-Replayed" not in first.headers
    for answer in rest:
        assert answer.status_code == 200
        assert answer.text == first.text
        assert answer.headers["Idempotent-Replayed"] == "true"
    for answer in others:
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "signal_id_conflict"
    assert list(broker.submit_counts.values()) == [1]
