"""AlertSender against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from gateway.ops.alerts import AlertSender

FAST: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05}
# Safety deadlines only: a passing run waits on events, never this long.
DEADLINE_S = 30.0
GATE_TIMEOUT_S = 60.0


class Webhook:
    """A webhook that answers the queued statuses in turn (then 200).

    While ``gate`` is clear it takes requests but holds every answer, so a test can see what
    reached it and what was answered without measuring time: ``requests`` grows when a request
    arrives, ``answered`` when its answer goes out.
    """

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answered = 0
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with webhook.lock:
                    webhook.requests.append((self.path, dict(self.headers), body))
                    status = webhook.statuses.pop(0) if webhook.statuses else 200
                webhook.gate.wait(timeout=GATE_TIMEOUT_S)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
                with webhook.lock:
                    webhook.answered += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3cr3t-path"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def hold_answers(self) -> None:
        self.gate.clear()

    def release_answers(self) -> None:
        self.gate.set()

    async def until_received(self, count: int) -> None:
        """Wait (with a generous deadline) until ``count`` requests have arrived."""
        deadline = time.monotonic() + DEADLINE_S
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests came"
            await asyncio.sleep(0.01)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.requests]

    def close(self) -> None:
        self.release_answers()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.ops.alerts" and r.levelno == level
    ]


async def test_retries_503_then_delivers(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.ops.alerts")
    webhook.statuses = [503, 503]
    webhook.hold_answers()
    sender = AlertSender(webhook.url, **FAST)

    sender.send("halt", {"trigger": "daily_loss", "measure": Decimal("0.051"), "by": "risk"})

    # send() has returned while the webhook holds every answer: it did not wait on the webhook.
    assert webhook.answered == 0
    assert webhook.requests == []  # nothing has gone out yet: delivery is in the background
    assert sender.pending == 1
    await webhook.until_received(1)
    webhook.release_answers()
    assert await sender.drain(DEADLINE_S) is True
    await sender.aclose()

    assert len(webhook.requests) == 3  # two 503s, then accepted
    path, headers, _ = webhook.requests[-1]
    assert path == "/hooks/s3cr3t-path"
    assert headers["content-type"] == "application/json"
    body = webhook.bodies()[-1]
    assert body["event"] == "halt"
    assert body["trigger"] == "daily_loss"
    assert body["measure"] == 0.051
    assert body["by"] == "risk"
    at = dt.datetime.fromisoformat(body["at"])
    assert abs((dt.datetime.now(dt.UTC) - at).total_seconds()) < 5
    assert webhook.bodies()[0] == body  # every attempt sends the same alert

    assert _messages(caplog, logging.CRITICAL) == ["alert halt"]
    assert len(_messages(caplog, logging.WARNING)) == 2
    assert _messages(caplog, logging.ERROR) == []
    assert any("delivered" in m for m in _messages(caplog, logging.INFO))
    # The secret-bearing path of the webhook URL is never logged.
    assert not any("s3cr3t" in r.getMessage() for r in caplog.records)


async def test_gives_up_after_attempts_and_logs_error(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.statuses = [503] * 10
    sender = AlertSender(webhook.url, attempts=3, **FAST)
    sender.send("kill", {"reason": "test"})
    assert await sender.drain(DEADLINE_S) is True
    assert len(webhook.requests) == 3
    [error] = _messages(caplog, logging.ERROR)
    assert "not delivered" in error
    assert "after 3 attempt(s)" in error
    assert "503" in error


async def test_client_error_is_not_retried(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.statuses = [400]
    sender = AlertSender(webhook.url, **FAST)
    sender.send("halt", {})
    assert await sender.drain(DEADLINE_S) is True
    assert len(webhook.requests) == 1
    [error] = _messages(caplog, logging.ERROR)
    assert "webhook answered 400" in error


async def test_429_is_retried(webhook: Webhook) -> None:
    webhook.statuses = [429]
    sender = AlertSender(webhook.url, **FAST)
    sender.send("halt", {})
    assert await sender.drain(DEADLINE_S) is True
    assert len(webhook.requests) == 2


async def test_connection_refused_is_retried_then_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    sender = AlertSender(f"http://127.0.0.1:{port}/hook", attempts=3, **FAST)
    sender.send("halt", {"reason": "x"})  # must not raise
    assert await sender.drain(DEADLINE_S) is True
    assert len(_messages(caplog, logging.WARNING)) == 2
    [error] = _messages(caplog, logging.ERROR)
    assert "ConnectError" in error


async def test_without_webhook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    sender = AlertSender(None)
    sender.send("halt", {"reason": "manual stop", "name": "clashes with LogRecord"})
    assert sender.pending == 0
    assert await sender.drain(1) is True
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert record.getMessage() == "alert halt"
    assert record.__dict__["alert"]["reason"] == "manual stop"


async def test_payload_cannot_override_event_or_at(webhook: Webhook) -> None:
    sender = AlertSender(webhook.url, **FAST)
    sender.send("halt", {"event": "spoofed", "at": "never", "when": dt.datetime(2026, 1, 2)})
    assert await sender.drain(DEADLINE_S) is True
    [body] = webhook.bodies()
    assert body["event"] == "halt"
    assert body["at"] != "never"
    assert body["when"] == "2026-01-02T00:00:00"


async def test_given_client_is_used_and_left_open(webhook: Webhook) -> None:
    async with httpx.AsyncClient() as client:
        sender = AlertSender(webhook.url, client=client, **FAST)
        sender.send("halt", {})
        assert await sender.drain(DEADLINE_S) is True
        await sender.aclose()
        assert not client.is_closed
    assert len(webhook.requests) == 1


async def test_aclose_cancels_pending_deliveries_with_an_error(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.hold_answers()
    sender = AlertSender(webhook.url, **FAST)
    sender.send("halt", {})
    await webhook.until_received(1)
    assert await sender.drain(0.05) is False  # still in flight: its answer is held
    await sender.aclose()
    assert sender.pending == 0
    assert any("cancelled at shutdown" in m for m in _messages(caplog, logging.ERROR))
    sender.send("late", {})  # after close: logged, not scheduled, not raised
    assert sender.pending == 0
    assert any("closed" in m for m in _messages(caplog, logging.ERROR))


async def test_many_alerts_are_delivered_concurrently(webhook: Webhook) -> None:
    webhook.hold_answers()
    sender = AlertSender(webhook.url, **FAST)
    for i in range(5):
        sender.send("halt", {"n": i})
    # All five reach the webhook while it answers none: not one after another.
    await webhook.until_received(5)
    assert webhook.answered == 0
    webhook.release_answers()
    assert await sender.drain(DEADLINE_S) is True
    assert sorted(b["n"] for b in webhook.bodies()) == [0, 1, 2, 3, 4]


def test_send_outside_an_event_loop_delivers_from_a_thread(webhook: Webhook) -> None:
    webhook.statuses = [503]
    webhook.hold_answers()
    sender = AlertSender(webhook.url, **FAST)
    sender.send("state_unreadable", {"path": "/var/lib/execution-gateway/halt.json"})
    assert webhook.answered == 0  # send() returned without waiting for the webhook's answer
    webhook.release_answers()
    assert asyncio.run(sender.drain(DEADLINE_S)) is True
    assert [b["event"] for b in webhook.bodies()] == ["state_unreadable"] * 2
