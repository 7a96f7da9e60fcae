"""Idempotency beyond the in-memory window: a signal_id decided long ago (out of the window, or
before a restart) is answered from the journal's index with the first decision's exact JSON,
409 with another body, and never sent to the broker again; the start reads no signal history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brokers.simulated import SimulatedBroker
from gateway.config import GatewayConfig
from tests.conftest import api_client, signal


async def test_a_signal_older_than_the_window_replays_from_the_journal(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    service = await make_service(make_config())
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    service.engine.signals._window = 3
    async with api_client(service) as client:
        first = await client.post("/v1/signals", json=signal("old-1", quantity=5))
        for n in range(5):
            await client.post("/v1/signals", json=signal(f"later-{n}", quantity=1))
        assert "old-1" not in service.engine.signals._decided  # out of the window
        replay = await client.post("/v1/signals", json=signal("old-1", quantity=5))
        other = await client.post("/v1/signals", json=signal("old-1", quantity=6))
    assert first.status_code == 200 and first.json()["decision"] == "accepted"
    assert replay.status_code == 200
    assert replay.text == first.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409 and other.json()["code"] == "signal_id_conflict"
    assert len(service.engine.signals._decided) <= 3
    assert sum(broker.submit_counts.values()) == 6  # the replay sent nothing


async def test_the_start_holds_no_decided_signal_in_memory_and_still_replays(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    service = await make_service(config)
    async with api_client(service) as client:
        first = await client.post("/v1/signals", json=signal("before-restart", quantity=2))
        refused = await client.post("/v1/signals", json=signal("refused", quantity=10**9))
    await service.stop()
    again = await make_service(config)
    assert again.engine.signals._decided == {}
    async with api_client(again) as client:
        replay = await client.post("/v1/signals", json=signal("before-restart", quantity=2))
        replay_refused = await client.post("/v1/signals", json=signal("refused", quantity=10**9))
        other = await client.post("/v1/signals", json=signal("before-restart", quantity=3))
    assert replay.text == first.text and replay.headers["Idempotent-Replayed"] == "true"
    assert replay_refused.text == refused.text
    assert other.status_code == 409
