"""Request bodies are capped before anything reads them: a huge body, with or without a token,
is a 413 at once, never hundreds of megabytes held and parsed on the loop that runs the kill
switch."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.http.limits import MAX_BODY_BYTES
from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def test_a_body_over_the_cap_is_refused_by_its_length(service: GatewayService) -> None:
    huge = b'{"reason": "' + b"x" * MAX_BODY_BYTES + b'"}'
    for token in (None, "strategy-token-for-tests"):
        async with api_client(service, token) as client:
            answer = await client.post(
                "/v1/halt", content=huge, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 413
            assert answer.json()["code"] == "body_too_large"
    assert service.halt.current is None


async def test_a_chunked_body_is_refused_once_it_passes_the_cap(service: GatewayService) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"reason": "'
        for _ in range(64):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)
        yield b'"}'

    async with api_client(service) as client:
        answer = await client.post(
            "/v1/halt", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 413 and answer.json()["code"] == "body_too_large"
    assert service.halt.current is None


async def test_bodies_under_the_cap_are_read_as_ever(service: GatewayService) -> None:
    async with api_client(service) as client:
        answer = await client.post("/v1/signals", json=signal("small"))
    assert answer.status_code == 200 and answer.json()["decision"] == "accepted"
