"""Alerts: a CRITICAL log line always, and a JSON POST to a webhook when one is configured.

:meth:`AlertSender.send` only schedules the delivery and returns: a halt or a kill never waits
on (or fails because of) a slow or broken webhook. Delivery runs in a background task, retried
with bounded, jittered exponential backoff on connection errors, timeouts, 429 and 5xx; a
delivery that finally fails is logged at ERROR, never dropped silently. Call :meth:`drain` at
shutdown so alerts raised while stopping still go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["AlertSender"]

log = logging.getLogger(__name__)


class _RetryableStatus(Exception):
    """The webhook answered with a status worth retrying (429 or 5xx)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"webhook answered {status_code}")
        self.status_code = status_code


def _retryable(exc: BaseException) -> bool:
    # TransportError covers connect/read/write errors and timeouts. A 4xx other than 429 means
    # the request itself is wrong: sending it again cannot help.
    return isinstance(exc, _RetryableStatus | httpx.TransportError)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


class AlertSender:
    """Raises alerts; one per gateway, owned by the service, closed at shutdown."""

    def __init__(
        self,
        webhook_url: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        attempts: int = 5,
        timeout_s: float = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30,
    ) -> None:
        """``webhook_url``: where to POST (None: log only).

        ``client``: an HTTP client to use (and leave open); by default each delivery opens its
        own, as alerts are rare and a client bound to one event loop cannot serve another.
        ``attempts``: POSTs per alert at most. ``timeout_s``: per POST. ``backoff_s`` and
        ``max_backoff_s``: the exponential backoff's base and cap; each wait is drawn at random
        below the current step (full jitter), so gateways that lost the same webhook do not
        retry in step.
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.webhook_url = webhook_url or None
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._client = client
        self._tasks: set[asyncio.Task[bool]] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        # The webhook URL may carry a secret in its path (Slack, Teams): logs name the host only.
        parts = urlsplit(self.webhook_url or "")
        self._where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "webhook"

    @property
    def pending(self) -> int:
        """Deliveries not finished yet."""
        return sum(not t.done() for t in self._tasks) + sum(
            t.is_alive() for t in list(self._threads)
        )

    def send(self, event: str, payload: Mapping[str, Any] | None = None) -> None:
        """Raise an alert: log it at CRITICAL and schedule its delivery. Never blocks or raises.

        The body is ``{"event": event, "at": <ISO-8601 UTC>, **payload}`` (``event`` and ``at``
        win over payload keys of the same name), serialised now, so later changes to
        ``payload`` do not alter the alert.
        """
        try:
            at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            body: dict[str, Any] = {"event": event, "at": at}
            body.update((k, v) for k, v in (payload or {}).items() if k not in body)
            content = json.dumps(body, default=_json_default).encode()
            # The payload goes under one key: its own keys could clash with LogRecord's.
            log.critical("alert %s", event, extra={"alert_event": event, "alert": body})
            if self.webhook_url is None:
                return
            if self._closed:
                log.error("alert %s not delivered: the alert sender is closed", event)
                return
            self._schedule(event, content)
        except Exception:
            # The caller is halting or killing: an alert problem must not interrupt that.
            log.exception("alert %s could not be scheduled", event)

    def _schedule(self, event: str, content: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(self._deliver(event, content), name=f"alert-{event}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return

        # Called outside the event loop (startup code, a worker thread): deliver from a thread
        # with a loop of its own rather than lose the alert.
        def run() -> None:
            try:
                asyncio.run(self._deliver(event, content, own_client=True))
            finally:
                self._threads.discard(thread)

        thread = threading.Thread(target=run, name=f"alert-{event}", daemon=True)
        self._threads.add(thread)
        thread.start()

    async def _deliver(self, event: str, content: bytes, *, own_client: bool = False) -> bool:
        """POST one alert with retries; True when the webhook took it. Logs, never raises."""
        assert self.webhook_url is not None
        url = self.webhook_url
        client = None if own_client else self._client
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: self._log_retry(event, state),
            reraise=True,
        )
        headers = {"content-type": "application/json"}
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_s)
                if client is None
                else contextlib.nullcontext(client)  # borrowed: its owner closes it
            ) as http:
                async for attempt in retrying:
                    with attempt:
                        response = await http.post(
                            url, content=content, headers=headers, timeout=self.timeout_s
                        )
                        if response.status_code == 429 or response.status_code >= 500:
                            raise _RetryableStatus(response.status_code)
                        response.raise_for_status()
        except asyncio.CancelledError:
            log.error("alert %s not delivered to %s: cancelled at shutdown", event, self._where)
            raise
        except Exception as exc:
            log.error(
                "alert %s not delivered to %s after %d attempt(s): %s",
                event,
                self._where,
                retrying.statistics.get("attempt_number", 1),
                _describe(exc),
                extra={"alert_event": event},
            )
            return False
        log.info("alert %s delivered to %s", event, self._where, extra={"alert_event": event})
        return True

    def _log_retry(self, event: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "alert %s: attempt %d to %s failed (%s); retrying in %.2f s",
            event,
            state.attempt_number,
            self._where,
            _describe(exc),
            wait,
        )

    async def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for pending deliveries; True when none is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        for thread in list(self._threads):
            remaining = max(0.0, deadline - loop.time())
            await asyncio.to_thread(thread.join, remaining)
            if not thread.is_alive():
                self._threads.discard(thread)
        return self.pending == 0

    async def aclose(self) -> None:
        """Stop taking alerts for delivery and cancel the ones still pending (each logged).

        A client passed in is left open: its owner closes it.
        """
        self._closed = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"webhook answered {exc.response.status_code}"
    if isinstance(exc, _RetryableStatus):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
