"""One signal_id sent by 16 concurrent clients at once, over a real uvicorn server (the
middleware and the encoder the wire sees), many times over.

Guarantees pinned (HTTP API: the same signal_id again returns the first decision, the same id
with a different body is 409; Contract details: a replayed signal_id answers exactly the JSON of
the first decision; Orders a strategy manages: a replay carries ``Idempotent-Replayed: true``):
- the same body from 16 clients: exactly one order at the broker (sent once), every answer is
  200 with the identical JSON, which is the journal's decision, and exactly one answer (the one
  that decided) lacks ``Idempotent-Replayed: true``;
- 16 different bodies under one id: one wins (200, the decision of its own body, journaled with
  its body), every other is 409 signal_id_conflict, and there is one order;
- a mix of both: the bodies equal to the winner's are replays of it, the others 409."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import signal
from tests.integration.sse import headers, serving

CLIENTS = 16
ROUNDS = 12


def _config(make_config: Callable[..., GatewayConfig]) -> GatewayConfig:
    return make_config(
        risk={"pre_trade": {"max_orders_per_second": 1_000_000, "allow_short": True}}
    )


@contextlib.asynccontextmanager
async def _clients(url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """16 clients, each with its own connection, connected before any race."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers(), timeout=30)
            )
            for _ in range(CLIENTS)
        ]
        for client in clients:
            assert (await client.get("/healthz")).status_code == 200
        yield clients


async def _race(
    clients: list[httpx.AsyncClient], bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """Every body posted at once, each by its own client, released together."""
    go = asyncio.Event()

    async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        await go.wait()
        return await client.post("/v1/signals", json=body)

    tasks = [asyncio.create_task(post(c, b)) for c, b in zip(clients, bodies, strict=True)]
    await asyncio.sleep(0)
    go.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), 60)


def _orders_of(service: GatewayService, signal_id: str) -> list[str]:
    return [o.client_order_id for o in service.journal.orders() if o.signal_id == signal_id]


@pytest.mark.parametrize("latency_ms", [0, 30])
async def test_one_signal_id_from_16_clients_makes_one_order_and_one_answer(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], latency_ms: int
) -> None:
    service: GatewayService = await make_service(_config(make_config))
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    if latency_ms:
        broker.set_faults(Faults(latency_ms=latency_ms))
    async with serving(service) as url, _clients(url) as clients:
        for r in range(ROUNDS):
            body = signal(f"dup-{r}", quantity=1 + r % 3, side=("buy", "sell")[r % 2])
            if r % 3 == 2:
                body.update(order_type="limit", limit_price=190 if r % 2 == 0 else 210)
            answers = await _race(clients, [body] * CLIENTS)
            assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text for a in answers]
            texts = {a.text for a in answers}
            assert len(texts) == 1, texts
            first = [a for a in answers if a.headers.get("Idempotent-Replayed") != "true"]
            assert len(first) == 1, f"round {r}: {len(first)} answers were not marked replays"
            for answer in answers:
                assert answer.headers.get("Idempotent-Replayed") in (None, "true")
            stored = service.journal.signal(body["signal_id"])
            assert stored is not None and stored.decision == answers[0].text
            decision = json.loads(answers[0].text)
            assert decision["decision"] == "accepted", decision
            orders = _orders_of(service, body["signal_id"])
            assert orders == [decision["order"]["client_order_id"]], orders
            assert broker.submit_counts.get(orders[0]) == 1
    assert len(broker.submit_counts) == ROUNDS
    assert set(broker.submit_counts.values()) == {1}


@pytest.mark.parametrize("latency_ms", [0, 30])
async def test_one_signal_id_with_16_bodies_racing_one_wins_the_rest_conflict(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any], latency_ms: int
) -> None:
    service: GatewayService = await make_service(_config(make_config))
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    if latency_ms:
        broker.set_faults(Faults(latency_ms=latency_ms))
    async with serving(service) as url, _clients(url) as clients:
        for r in range(ROUNDS):
            signal_id = f"conflict-{r}"
            # Every other client sends the first body; the rest a body of their own.
            bodies = [
                signal(signal_id, quantity=1 if k % 2 == 0 else 2 + k, side=("buy", "sell")[r % 2])
                for k in range(CLIENTS)
            ]
            if r % 2:  # all different
                bodies = [signal(signal_id, quantity=1 + k) for k in range(CLIENTS)]
            answers = await _race(clients, bodies)
            won = [(b, a) for b, a in zip(bodies, answers, strict=True) if a.status_code == 200]
            for answer in answers:
                assert answer.status_code in (200, 409), answer.text
                if answer.status_code == 409:
                    assert answer.json()["code"] == "signal_id_conflict", answer.text
            assert won, "no body won"
            winner_body = won[0][0]
            assert all(b == winner_body for b, _ in won), "two different bodies both won"
            texts = {a.text for _, a in won}
            assert len(texts) == 1, texts
            assert sum(a.headers.get("Idempotent-Replayed") != "true" for _, a in won) == 1
            for body, answer in zip(bodies, answers, strict=True):
                if body == winner_body:
                    assert answer.status_code == 200, "the winner's own body was refused"
            decision = json.loads(texts.pop())
            assert decision["decision"] == "accepted", decision
            assert decision["order"]["quantity"] == winner_body["quantity"]
            stored = service.journal.signal(signal_id)
            assert stored is not None and stored.decision == won[0][1].text
            orders = _orders_of(service, signal_id)
            assert orders == [decision["order"]["client_order_id"]], orders
            (order,) = [o for o in service.journal.orders() if o.signal_id == signal_id]
            assert Decimal(order.quantity) == winner_body["quantity"]  # the winner's intent
    assert len(broker.submit_counts) == ROUNDS
    assert set(broker.submit_counts.values()) == {1}
