"""Local stand-ins for Alpaca's two websockets, speaking their protocols on 127.0.0.1.

``FakeTradingStream`` is ``wss://paper-api.alpaca.markets/stream``: JSON, answered in binary
frames as the paper endpoint does; auth (``{"action": "auth", "key", "secret"}``, and the older
``{"action": "authenticate", "data": {"key_id", "secret_key"}}``), ``listen``, then
``trade_updates`` pushed by the test (``send_update``).

``FakeDataStream`` is ``wss://stream.data.alpaca.markets/v2/{feed}``: msgpack (JSON if the
client does not ask for msgpack), ``connected`` on open, auth, ``subscribe`` to quotes, quotes
pushed by the test (``send_quote``). Like Alpaca it allows ONE authenticated connection per key
and refuses another with ``[{"T": "error", "code": 406, "msg": "connection limit exceeded"}]``;
``occupy_slot()`` plays "another process already holds the connection".

Both: pick a free port on ``start()`` and keep it across ``stop()``/``start()``, so a test can
take the service away and bring it back; ``drop()`` cuts every live connection; counters and
``wait_*`` helpers let tests wait for the client instead of sleeping. Start them from a fixture
and point ``AlpacaBroker(trading_stream_url=fake.url, data_stream_url=fake.url)`` at them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# The server side logs frames at DEBUG too, the client's auth frame included: kept at INFO so a
# test can check that no log line anywhere carries the keys.
_SERVER_LOG = logging.getLogger("tests.fakes.alpaca_streams.server")
_SERVER_LOG.setLevel(logging.INFO)


class _FakeServer:
    path = "/"

    def __init__(self, *, key: str, secret: str):
        self.key = key
        self.secret = secret
        self.port = 0
        self._server: Server | None = None
        self.clients: set[ServerConnection] = set()
        self.connections = 0  # connections accepted, ever
        self.auth_attempts = 0
        self.connect_times: list[float] = []
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool], within_s: float = 10.0) -> None:
        """Wait (at most ``within_s``) until ``condition()`` holds after some server event."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(condition)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port, logger=_SERVER_LOG)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection (the port stays ours for ``start()``)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.clients.clear()

    async def drop(self) -> None:
        """Cut every live connection at once, without a closing handshake (a network drop)."""
        for ws in list(self.clients):
            transport = getattr(ws, "transport", None)
            if transport is not None:
                transport.abort()
        self.clients.clear()

    async def wait_clients(self, count: int = 1, within_s: float = 10.0) -> None:
        await self.wait_until(lambda: len(self.clients) >= count, within_s)

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.connect_times.append(asyncio.get_running_loop().time())
        try:
            await self._session(ws)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)
            await self._notify()

    async def _session(self, ws: ServerConnection) -> None:
        raise NotImplementedError


class FakeTradingStream(_FakeServer):
    path = "/stream"

    def __init__(self, *, key: str, secret: str, binary: bool = True):
        super().__init__(key=key, secret=secret)
        self.binary = binary  # paper-api answers in binary frames
        self.reject_auth = False

    @property
    def url(self) -> str:
        return f"{super().url}{self.path}"

    async def _send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        await ws.send(text.encode() if self.binary else text)

    async def _session(self, ws: ServerConnection) -> None:
        auth = json.loads(await ws.recv())
        self.auth_attempts += 1
        if auth.get("action") == "auth":
            key, secret = auth.get("key"), auth.get("secret")
        else:
            data = auth.get("data") or {}
            key, secret = data.get("key_id"), data.get("secret_key")
        ok = not self.reject_auth and (key, secret) == (self.key, self.secret)
        await self._send(
            ws,
            {
                "stream": "authorization",
                "data": {
                    "action": "authenticate",
                    "status": "authorized" if ok else "unauthorized",
                },
            },
        )
        if not ok:
            await ws.close(1008, "unauthorized")
            return
        async for raw in ws:
            message = json.loads(raw)
            if message.get("action") == "listen":
                streams = (message.get("data") or {}).get("streams") or []
                granted = [s for s in streams if s == "trade_updates"]
                await self._send(ws, {"stream": "listening", "data": {"streams": granted}})
                if granted:
                    self.clients.add(ws)
                else:
                    self.clients.discard(ws)
                await self._notify()

    async def send_update(self, event: str, order: dict[str, Any], **fields: Any) -> None:
        """Push ``{"stream": "trade_updates", "data": {"event", "order", **fields}}`` to every
        listening client; ``timestamp`` defaults to now."""
        data = {"event": event, "order": order, **fields}
        data.setdefault("timestamp", datetime.now(UTC).isoformat().replace("+00:00", "Z"))
        for ws in list(self.clients):
            await self._send(ws, {"stream": "trade_updates", "data": data})


def order_json(
    order_id: str,
    client_order_id: str,
    symbol: str = "AAPL",
    qty: str = "10",
    side: str = "buy",
    *,
    status: str = "new",
    filled_qty: str = "0",
    filled_avg_price: str | None = None,
    order_type: str = "market",
    limit_price: str | None = None,
    time_in_force: str = "day",
    stop_price: str | None = None,
    replaces: str | None = None,
    replaced_by: str | None = None,
) -> dict[str, Any]:
    """An order as Alpaca's trade_updates carry it (numbers as strings)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": order_id,
        "client_order_id": client_order_id,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": replaced_by,
        "replaces": replaces,
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": qty,
        "filled_qty": filled_qty,
        "filled_avg_price": filled_avg_price,
        "order_class": "",
        "order_type": order_type,
        "type": order_type,
        "side": side,
        "time_in_force": time_in_force,
        "limit_price": limit_price,
        "stop_price": stop_price,
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }


class FakeDataStream(_FakeServer):
    FEEDS = ("iex", "sip")

    def __init__(self, *, key: str, secret: str):
        super().__init__(key=key, secret=secret)
        self.subscriptions: dict[ServerConnection, set[str]] = {}
        self.feeds_seen: list[str] = []
        self.slot_taken_elsewhere = False  # another process holds this key's one connection
        self.refused_406 = 0
        self.subscribe_messages: list[list[str]] = []
        self._msgpack_clients: set[ServerConnection] = set()

    def occupy_slot(self, taken: bool = True) -> None:
        self.slot_taken_elsewhere = taken

    def _encode(self, ws: ServerConnection, messages: list[dict[str, Any]]) -> bytes | str:
        if ws in self._msgpack_clients:
            packed: bytes = msgpack.packb(messages, datetime=True)
            return packed
        return json.dumps(messages, default=lambda d: d.isoformat())

    def _decode(self, raw: bytes | str) -> dict[str, Any]:
        message: dict[str, Any] = (
            msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        )
        return message

    async def _send(self, ws: ServerConnection, messages: list[dict[str, Any]]) -> None:
        await ws.send(self._encode(ws, messages))

    def _authenticated(self) -> int:
        return len(self.subscriptions)

    async def _session(self, ws: ServerConnection) -> None:
        request = ws.request
        path = request.path if request is not None else ""
        feed = path.rstrip("/").rsplit("/", 1)[-1]
        if not path.startswith("/v2/") or feed not in self.FEEDS:
            await ws.close(1008, f"unknown path {path}")
            return
        self.feeds_seen.append(feed)
        content_type = request.headers.get("Content-Type", "") if request is not None else ""
        if content_type == "application/msgpack":
            self._msgpack_clients.add(ws)
        await self._send(ws, [{"T": "success", "msg": "connected"}])
        auth = self._decode(await ws.recv())
        self.auth_attempts += 1
        if auth.get("action") != "auth" or (auth.get("key"), auth.get("secret")) != (
            self.key,
            self.secret,
        ):
            await self._send(ws, [{"T": "error", "code": 402, "msg": "auth failed"}])
            await ws.close()
            return
        if self.slot_taken_elsewhere or self._authenticated() >= 1:
            self.refused_406 += 1
            await self._notify()
            await self._send(ws, [{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
            await ws.close()
            return
        await self._send(ws, [{"T": "success", "msg": "authenticated"}])
        self.subscriptions[ws] = set()
        self.clients.add(ws)
        await self._notify()
        try:
            async for raw in ws:
                message = self._decode(raw)
                if message.get("action") == "subscribe":
                    quotes = [str(s) for s in message.get("quotes") or []]
                    self.subscribe_messages.append(quotes)
                    self.subscriptions[ws].update(quotes)
                    await self._notify()
                    await self._send(
                        ws,
                        [
                            {
                                "T": "subscription",
                                "trades": [],
                                "quotes": sorted(self.subscriptions[ws]),
                                "bars": [],
                                "updatedBars": [],
                                "dailyBars": [],
                                "statuses": [],
                                "lulds": [],
                                "corrections": [],
                                "cancelErrors": [],
                            }
                        ],
                    )
        finally:
            self.subscriptions.pop(ws, None)
            self._msgpack_clients.discard(ws)

    def subscribed(self) -> set[str]:
        result: set[str] = set()
        for symbols in self.subscriptions.values():
            result |= symbols
        return result

    async def wait_subscribed(self, *symbols: str, within_s: float = 10.0) -> None:
        await self.wait_until(lambda: set(symbols) <= self.subscribed(), within_s)

    async def send_quote(
        self, symbol: str, bid: float, ask: float, ts: datetime | None = None
    ) -> None:
        """Push one quote to every client subscribed to ``symbol`` (``t`` as msgpack timestamp)."""
        message = {
            "T": "q",
            "S": symbol,
            "bx": "V",
            "bp": bid,
            "bs": 3,
            "ax": "V",
            "ap": ask,
            "as": 2,
            "c": ["R"],
            "z": "C",
            "t": ts or datetime.now(UTC),
        }
        for ws, symbols in list(self.subscriptions.items()):
            if symbol in symbols:
                await self._send(ws, [message])

    async def send_error(self, code: int, msg: str) -> None:
        for ws in list(self.subscriptions):
            await self._send(ws, [{"T": "error", "code": code, "msg": msg}])
