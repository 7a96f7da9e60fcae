"""Alpaca's two websockets, spoken with the ``websockets`` package inside our event loop.

Why not alpaca-py's ``TradingStream`` / ``StockDataStream``: their loops poll a blocking
``queue.Queue.get(timeout=1)`` on the event loop, ``run()`` owns its own loop, and they report
neither a drop nor a reconnect to the caller, while the gateway must learn of a drop at once
(quotes go stale, order updates may be missed) and of a reconnect (it reconciles then). The two
protocols are small, so each client below is one coroutine that connects, authenticates,
subscribes, reads, and on any failure reconnects with jittered exponential backoff.

Trading stream (``wss://{paper-}api.alpaca.markets/stream``, JSON; paper sends binary frames):
  -> {"action": "auth", "key", "secret"}
  <- {"stream": "authorization", "data": {"status": "authorized" | "unauthorized", ...}}
  -> {"action": "listen", "data": {"streams": ["trade_updates"]}}
  <- {"stream": "listening", "data": {"streams": ["trade_updates"]}}
  <- {"stream": "trade_updates", "data": {"event": "fill", "order": {...}, "qty", "price", ...}}

Market data stream (``wss://stream.data.alpaca.markets/v2/{iex|sip}``, msgpack; every frame is
a list of messages):
  <- [{"T": "success", "msg": "connected"}]
  -> {"action": "auth", "key", "secret"}
  <- [{"T": "success", "msg": "authenticated"}] or [{"T": "error", "code": 402, "msg": ...}]
  -> {"action": "subscribe", "quotes": [...]}
  <- [{"T": "subscription", "quotes": [...]}], then [{"T": "q", "S", "bp", "ap", "t", ...}]

Connection limit: Alpaca allows ONE market-data connection per API key and answers a second
with ``{"T": "error", "code": 406, "msg": "connection limit exceeded"}``. That usually means
another process (a second gateway, a notebook) uses the same key. The client logs it as an
error naming the cause and waits at least ``limit_backoff_s`` before trying again (retrying
fast would only keep refusing); it keeps trying, so the gateway recovers once the other
connection goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import websockets
from tenacity import RetryCallState, Retrying, wait_exponential, wait_random_exponential
from websockets.asyncio.client import connect as ws_connect  # the asyncio API (websockets >= 13)

from brokers.alpaca.models import parse_quote_message, parse_trade_update
from brokers.base import BrokerEvent, QuoteEvent
from brokers.errors import BrokerError

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG, the auth frame with the keys included: its logger is
# held at INFO so a debug run cannot write the secret to a log.
_WIRE_LOG = logging.getLogger(f"{__name__}.wire")
_WIRE_LOG.setLevel(logging.INFO)

EmitEvent = Callable[[BrokerEvent], None]
StateChange = Callable[[str, bool, str], None]
OnUpdate = Callable[[dict[str, Any]], Awaitable[None]]
OnReady = Callable[[], Awaitable[None]]

CONNECTION_LIMIT = 406


class StreamRefused(Exception):
    """The server said no during the handshake (auth failed, connection limit, ...)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Backoff:
    """Reconnect waits, from tenacity's strategies: after the n-th failure in a row, between half
    and all of ``min(max_s, initial_s * 2**(n-1))`` (half fixed, half jitter, so clients that
    lost the link together do not reconnect together); after a 406 at least ``limit_backoff_s``.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    limit_backoff_s: float = 15.0  # after a 406 "connection limit exceeded"
    handshake_timeout_s: float = 10.0

    def delay(self, attempt: int, refused_code: int | None) -> float:
        """The wait after the ``attempt``-th failed connection in a row (1, 2, ...)."""
        half_initial, half_max = self.initial_s / 2, self.max_s / 2
        wait = wait_exponential(multiplier=half_initial, max=half_max) + wait_random_exponential(
            multiplier=half_initial, max=half_max
        )
        # The loop in _Stream.run counts the failures (a successful connection starts again at
        # 1), so the strategy is asked directly, with that count as the attempt number.
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = max(1, attempt)
        delay = float(wait(state))
        if refused_code == CONNECTION_LIMIT:
            # retrying fast would only be refused again while the other connection holds on
            delay = max(delay, self.limit_backoff_s)
        return delay


class _Stream:
    """One websocket kept alive: ``run()`` is the body of a long-lived task owned by the adapter."""

    name = "stream"

    def __init__(
        self,
        url: str,
        key: str,
        secret: str,
        *,
        emit: EmitEvent,
        on_state: StateChange,
        backoff: Backoff,
    ):
        self.url = url
        self._key = key
        self._secret = secret
        self._emit = emit
        self._on_state = on_state
        self._backoff = backoff
        self._ws: Any = None
        self.last_error = ""

    def __repr__(self) -> str:  # never show the keys
        return f"<{type(self).__name__} {self.url}>"

    @property
    def up(self) -> bool:
        return self._ws is not None

    async def run(self) -> None:
        attempt = 0
        while True:
            refused: int | None = None
            try:
                async with ws_connect(self.url, **self._connect_kwargs()) as ws:
                    async with asyncio.timeout(self._backoff.handshake_timeout_s):
                        await self._handshake(ws)
                    attempt = 0
                    self._ws = ws
                    await self._after_ready(ws)
                    self._on_state(self.name, True, "")
                    log.info("alpaca %s stream connected to %s", self.name, self.url)
                    await self._consume(ws)
                    reason = "closed by the server"
            except asyncio.CancelledError:
                self._ws = None
                raise
            except StreamRefused as exc:
                refused = exc.code
                reason = f"refused: {exc} (code {exc.code})"
                if exc.code == CONNECTION_LIMIT:
                    log.error(
                        "alpaca %s stream: connection limit exceeded (406): another "
                        "connection already uses this API key (Alpaca allows one)",
                        self.name,
                    )
            except websockets.ConnectionClosed as exc:
                reason = f"connection closed: {exc}"
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a malformed message or a bug: log it, never die silently
                log.exception("alpaca %s stream failed", self.name)
                reason = f"{type(exc).__name__}: {exc}"
            self._ws = None
            self.last_error = reason
            self._on_state(self.name, False, reason)
            attempt += 1
            delay = self._backoff.delay(attempt, refused)
            log.warning(
                "alpaca %s stream down (%s); reconnecting in %.2fs", self.name, reason, delay
            )
            await asyncio.sleep(delay)

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "open_timeout": self._backoff.handshake_timeout_s,
            "max_size": 2**22,
            "logger": _WIRE_LOG,
        }

    async def _handshake(self, ws: Any) -> None:
        raise NotImplementedError

    async def _after_ready(self, ws: Any) -> None:
        """Sends that must follow every (re)connect; nothing by default."""

    async def _consume(self, ws: Any) -> None:
        raise NotImplementedError


class TradingStream(_Stream):
    """``on_update`` (when given) gets each trade update's ``data`` instead of the plain
    OrderEvent (the adapter maps replaced orders and dedupes fills); ``on_ready`` runs after
    every (re)connect, before any update is read (the adapter fetches fills missed meanwhile,
    so they come before the updates that follow them)."""

    name = "trading"

    def __init__(
        self,
        *args: Any,
        on_update: OnUpdate | None = None,
        on_ready: OnReady | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._on_update = on_update
        self._on_ready = on_ready

    async def _after_ready(self, ws: Any) -> None:
        if self._on_ready is not None:
            await self._on_ready()

    @staticmethod
    def _decode(frame: str | bytes) -> dict[str, Any]:
        message = json.loads(frame)  # json.loads takes text and (UTF-8) binary frames alike
        if not isinstance(message, dict):
            raise ValueError(f"unexpected trading stream message: {message!r}")
        return message

    async def _handshake(self, ws: Any) -> None:
        await ws.send(json.dumps({"action": "auth", "key": self._key, "secret": self._secret}))
        answer = self._decode(await ws.recv())
        data = answer.get("data") or {}
        if answer.get("stream") != "authorization" or data.get("status") != "authorized":
            raise StreamRefused(f"authorization failed: {data.get('status') or answer}", code=401)
        await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        # Connected means listening: the gateway reconciles on connect, so every update after
        # that point must reach us.
        while True:
            answer = self._decode(await ws.recv())
            if answer.get("stream") == "listening":
                streams = (answer.get("data") or {}).get("streams") or []
                if "trade_updates" not in streams:
                    raise StreamRefused(f"trade_updates not granted: {streams}")
                return
            log.debug("alpaca trading stream: before listening: %s", answer)

    async def _consume(self, ws: Any) -> None:
        async for frame in ws:
            message = self._decode(frame)
            if message.get("stream") != "trade_updates":
                log.debug("alpaca trading stream: %s", message)
                continue
            try:
                if self._on_update is not None:
                    await self._on_update(message.get("data") or {})
                    continue
                event = parse_trade_update(message.get("data") or {})
            except BrokerError as exc:
                # One malformed update must not cost the stream; the reconcile after the next
                # reconnect (or the order look-ups) will correct the state.
                log.error("alpaca trade update not understood (%s): %s", exc, message)
                continue
            self._emit(event)


class DataStream(_Stream):
    name = "data"

    def __init__(
        self,
        url: str,
        key: str,
        secret: str,
        *,
        emit: EmitEvent,
        on_state: StateChange,
        backoff: Backoff,
    ):
        super().__init__(url, key, secret, emit=emit, on_state=on_state, backoff=backoff)
        self.symbols: set[str] = set()
        self._sends: set[asyncio.Task[None]] = set()

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs = super()._connect_kwargs()
        kwargs["additional_headers"] = {"Content-Type": "application/msgpack"}
        return kwargs

    @staticmethod
    def _decode(frame: str | bytes) -> list[dict[str, Any]]:
        if isinstance(frame, bytes):
            # timestamp=3: msgpack timestamps (the quote's "t") arrive as aware UTC datetimes
            message = msgpack.unpackb(frame, timestamp=3)
        else:
            message = json.loads(frame)
        if isinstance(message, dict):
            message = [message]
        if not isinstance(message, list):
            raise ValueError(f"unexpected data stream message: {message!r}")
        return [m for m in message if isinstance(m, dict)]

    @staticmethod
    def _refusal(message: dict[str, Any]) -> StreamRefused:
        code = message.get("code")
        return StreamRefused(
            str(message.get("msg") or "error"), code=code if isinstance(code, int) else None
        )

    async def _expect_success(self, ws: Any, expected: str) -> None:
        for message in self._decode(await ws.recv()):
            if message.get("T") == "error":
                raise self._refusal(message)
            if message.get("T") == "success" and message.get("msg") == expected:
                return
        raise StreamRefused(f"expected {expected!r} from the data stream")

    async def _handshake(self, ws: Any) -> None:
        await self._expect_success(ws, "connected")
        await ws.send(msgpack.packb({"action": "auth", "key": self._key, "secret": self._secret}))
        await self._expect_success(ws, "authenticated")

    async def _after_ready(self, ws: Any) -> None:
        # Resubscribe everything after each reconnect; symbols added during the handshake too.
        if self.symbols:
            await self._send_subscribe(ws, sorted(self.symbols))

    async def _send_subscribe(self, ws: Any, symbols: list[str]) -> None:
        await ws.send(msgpack.packb({"action": "subscribe", "quotes": symbols}))

    def subscribe(self, symbols: Iterable[str]) -> None:
        new = {s.strip().upper() for s in symbols if s.strip()} - self.symbols
        if not new:
            return
        self.symbols |= new
        ws = self._ws
        if ws is None:
            return  # sent with the others once connected
        task = asyncio.get_running_loop().create_task(
            self._send_subscribe(ws, sorted(new)), name="alpaca-data-subscribe"
        )
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The connection went away under us; _after_ready resubscribes on reconnect.
            log.warning("alpaca data stream: subscribe failed: %s", task.exception())

    def cancel_sends(self) -> None:
        for task in list(self._sends):
            task.cancel()

    async def _consume(self, ws: Any) -> None:
        async for frame in ws:
            for message in self._decode(frame):
                kind = message.get("T")
                if kind == "q":
                    try:
                        quote = parse_quote_message(str(message.get("S")), message)
                    except BrokerError as exc:
                        log.error("alpaca quote not understood (%s): %s", exc, message)
                        continue
                    self._emit(QuoteEvent(quote=quote))
                elif kind == "error":
                    refusal = self._refusal(message)
                    if refusal.code == CONNECTION_LIMIT:
                        raise refusal
                    # 405 symbol limit, 409 insufficient subscription (sip without a plan), ...
                    log.error("alpaca data stream error %s: %s", refusal.code, refusal)
                elif kind == "subscription":
                    log.info("alpaca data stream subscribed: quotes %s", message.get("quotes"))
