"""Alpaca adapter: the ``Broker`` protocol on alpaca-py's REST clients and Alpaca's websockets.

Design, briefly:

- REST goes through alpaca-py's ``TradingClient`` and ``StockHistoricalDataClient`` with
  ``raw_data=True`` (``alpaca_models`` reads the JSON exactly, numbers-as-strings into Decimal).
  Every call runs in a worker thread (``asyncio.to_thread``): the SDK is blocking and the event
  loop must never wait on a socket. alpaca-py's own retries (``time.sleep(3)`` on 429/504) are
  switched off and every request gets a timeout (``alpaca_rest.tame``).
- One attempt per call: this adapter never retries. ``brokers.retrying.RetryingBroker`` is the
  one retry layer (and owns the look-up before a submit is sent again).
- Errors: ``alpaca_rest.translate`` maps every vendor exception to ``brokers.errors`` at this
  edge: 401/403/422 -> OrderRejected, 422 "client_order_id must be unique" -> DuplicateOrder,
  404 -> OrderNotFound, 429 -> RateLimited (X-Ratelimit-Reset honoured), no connection made
  (refused, connect timeout) -> NotSent, 5xx, read timeouts, resets and unreadable answers ->
  BrokerUnavailable (the request may have landed).
- Idempotency: ``submit`` always sends the gateway's ``client_order_id``, so Alpaca itself refuses
  a second order under it (DuplicateOrder); ``get_order`` finds an order by it
  (GET /v2/orders:by_client_order_id).
- Happy path, one request each: account() GET /v2/account, submit() POST /v2/orders,
  open_orders() GET /v2/orders?status=open&limit=500 (more pages only past 500 open orders),
  cancel_all() DELETE /v2/orders (its 207 body is the CancelReport).
- Orders a strategy manages (``alpaca_lifecycle``, ``alpaca_ledger``): cancel, replace (Alpaca's
  new order reported under the gateway's client_order_id), brackets, and the fills missed while
  the trading stream was down (fetched before the stream is read again).
- Streams (``alpaca_streams``): trade updates -> OrderEvent (with Fill), quotes -> QuoteEvent.
  ``connected`` is true while both websockets are up; a drop emits ConnectionEvent(False) at
  once and the reconnect ConnectionEvent(True) (the gateway reconciles on it). Alpaca allows
  one market-data connection per key; a second is refused with 406 "connection limit
  exceeded", logged as an error and retried after a long backoff (see alpaca_streams).
- Keys come from the constructor or the environment (``from_env``), never from YAML, and are
  never logged (``repr`` omits them).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests
from alpaca.common.enums import BaseURL
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from brokers.alpaca.executions import executions
from brokers.alpaca.ledger import Ledger
from brokers.alpaca.lifecycle import Lifecycle
from brokers.alpaca.models import (
    UnparsableAnswer,
    order_request,
    parse_account,
    parse_cancel_report,
    parse_latest_quote,
    parse_order,
    parse_positions,
    parse_ts,
)
from brokers.alpaca.rest import tame, translate
from brokers.alpaca.streams import Backoff, DataStream, TradingStream
from brokers.base import (
    Account,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    ConnectionEvent,
    Fill,
    OrderChange,
    OrderRequest,
    Position,
    Quote,
)
from brokers.errors import BrokerError, BrokerUnavailable
from brokers.events import EventFanout

log = logging.getLogger(__name__)

__all__ = ["AlpacaBroker"]

API_KEY_ENV = "ALPACA_API_KEY"
SECRET_KEY_ENV = "ALPACA_SECRET_KEY"
FEEDS = ("iex", "sip")
PAGE_LIMIT = 500  # Alpaca's maximum page size for GET /v2/orders (its default is only 50)
# Missed fills are asked for from this long before the drop was seen: our clock and Alpaca's
# may differ, and a fill reported already is recognised (the ledger), so overlap is harmless.
GAP_MARGIN = timedelta(seconds=30)


class AlpacaBroker:
    """``Broker`` for Alpaca (paper by default). REST works at once; ``connect()`` starts streams.

    Keyword options beyond the contract: ``base_url`` / ``data_url`` (REST roots, without /v2),
    ``trading_stream_url`` (full URL) / ``data_stream_url`` (root; ``/v2/{feed}`` is appended),
    ``timeout_s`` per request (for connecting, and for each wait on the answer), the stream
    reconnect backoff, ``connect_timeout_s`` and ``transport`` (a requests adapter standing in
    for the network, for tests).
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        feed: Literal["iex", "sip"] | str = "iex",
        base_url: str | None = None,
        data_url: str | None = None,
        trading_stream_url: str | None = None,
        data_stream_url: str | None = None,
        timeout_s: float = 10.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        connection_limit_backoff_s: float = 15.0,
        connect_timeout_s: float = 15.0,
        transport: requests.adapters.BaseAdapter | None = None,
    ):
        if not api_key or not secret_key:
            raise BrokerError(
                "AlpacaBroker needs an api_key and a secret_key", code="missing_credentials"
            )
        if feed not in FEEDS:
            raise BrokerError(
                f"feed: must be one of {', '.join(FEEDS)}, not {feed!r}", code="bad_config"
            )
        self.paper = paper
        self.feed = feed
        trading_root = base_url or (BaseURL.TRADING_PAPER if paper else BaseURL.TRADING_LIVE).value
        self._trading = TradingClient(
            api_key, secret_key, paper=paper, raw_data=True, url_override=trading_root.rstrip("/")
        )
        data_root = (data_url or BaseURL.DATA.value).rstrip("/")
        self._data = StockHistoricalDataClient(
            api_key, secret_key, raw_data=True, url_override=data_root
        )
        for client in (self._trading, self._data):
            tame(client, timeout_s=timeout_s, transport=transport)
        self._orders = Lifecycle(self._trading, self._call, Ledger())
        self._gap_since: datetime | None = None  # the trading stream is down since (margin in)
        self._trading_was_up = False
        self._trade_stream, self._data_stream = self._make_streams(
            api_key,
            secret_key,
            trading_stream_url=trading_stream_url,
            data_stream_url=data_stream_url,
            backoff=Backoff(
                initial_s=reconnect_initial_s,
                max_s=reconnect_max_s,
                limit_backoff_s=connection_limit_backoff_s,
            ),
        )
        self._connect_timeout_s = connect_timeout_s
        self._events = EventFanout()
        self._tasks: list[asyncio.Task[None]] = []
        self._up = {"trading": False, "data": False}
        self._was_connected = False
        self._up_event = asyncio.Event()
        self._closed = False

    def _make_streams(
        self,
        api_key: str,
        secret_key: str,
        *,
        trading_stream_url: str | None,
        data_stream_url: str | None,
        backoff: Backoff,
    ) -> tuple[TradingStream, DataStream]:
        """The trade-updates stream and the quotes stream, both feeding this adapter."""
        default = BaseURL.TRADING_STREAM_PAPER if self.paper else BaseURL.TRADING_STREAM_LIVE
        data_root = (data_stream_url or BaseURL.MARKET_DATA_STREAM.value).rstrip("/")
        wiring: dict[str, Any] = {
            "emit": self._emit,
            "on_state": self._on_state,
            "backoff": backoff,
        }
        trading = TradingStream(
            trading_stream_url or default.value,
            api_key,
            secret_key,
            on_update=self._on_trade_update,
            on_ready=self._recover_gap,
            **wiring,
        )
        return (
            trading,
            DataStream(f"{data_root}/v2/{self.feed}", api_key, secret_key, **wiring),
        )

    @classmethod
    def from_env(
        cls,
        *,
        paper: bool = True,
        feed: str = "iex",
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AlpacaBroker:
        """Build from ALPACA_API_KEY / ALPACA_SECRET_KEY (the systemd EnvironmentFile);
        ``environ`` defaults to ``os.environ``."""
        env = os.environ if environ is None else environ
        keys = {var: env.get(var, "").strip() for var in (API_KEY_ENV, SECRET_KEY_ENV)}
        missing = [var for var, value in keys.items() if not value]
        if missing:
            raise BrokerError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                "the Alpaca keys come from the environment",
                code="missing_credentials",
            )
        return cls(keys[API_KEY_ENV], keys[SECRET_KEY_ENV], paper=paper, feed=feed, **options)

    def __repr__(self) -> str:
        return f"AlpacaBroker(paper={self.paper}, feed={self.feed!r}, connected={self.connected})"

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One blocking SDK call in a worker thread; vendor errors become ours here."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            raise translate(exc) from exc

    async def rest(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """Raw JSON of any trading endpoint (``path`` below /v2), same error mapping, no retry:
        an escape hatch for endpoints the protocol does not cover."""
        fn = getattr(self._trading, method.lower())
        return await self._call(fn, path, data)

    async def account_configurations(self) -> dict[str, Any]:
        """GET /v2/account/configurations (no_shorting, suspend_trade, ...), raw."""
        result: dict[str, Any] = await self.rest("GET", "/account/configurations")
        return result

    # ------------------------------------------------------------------ REST: reads

    async def account(self) -> Account:
        return parse_account(await self._call(self._trading.get_account))

    async def positions(self) -> list[Position]:
        return parse_positions(await self._call(self._trading.get_all_positions))

    async def open_orders(self) -> list[BrokerOrder]:
        seen: dict[str, dict[str, Any]] = {}
        until: datetime | None = None
        while True:
            request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=PAGE_LIMIT, until=until)
            page = await self._call(self._trading.get_orders, request)
            if not isinstance(page, list):
                raise UnparsableAnswer(f"expected a list of orders, got {type(page).__name__}")
            fresh = [o for o in page if isinstance(o, dict) and o.get("id") not in seen]
            seen.update((str(o.get("id")), o) for o in fresh)
            if len(page) < PAGE_LIMIT or not fresh:
                return await self._orders.views(list(seen.values()))
            # Newest first: the next page is what was submitted up to the oldest seen here.
            until = min(parse_ts(o.get("submitted_at") or o.get("created_at")) for o in page)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """One GET by client_order_id; a replaced order is followed to the order replacing it
        (reported under the same client_order_id)."""
        return await self._orders.get_order(client_order_id)

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        """The FILL activities of these orders (see ``executions.py``): what a restarted
        gateway asks for, the stream's catch-up covering only a drop within one process."""
        return await executions(self._orders, client_order_ids)

    async def quote(self, symbol: str) -> Quote:
        symbol = symbol.strip().upper()  # Alpaca's symbols (and the stream's) are upper case
        request = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=DataFeed(self.feed))
        return parse_latest_quote(
            symbol, await self._call(self._data.get_stock_latest_quote, request)
        )

    # ------------------------------------------------------------------ REST: orders

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        """One POST /v2/orders. A 422 "client_order_id must be unique" is DuplicateOrder, an
        answer that cannot be read is BrokerUnavailable (the order may have landed)."""
        answer = await self._call(self._trading.submit_order, order_request(order))
        try:
            return parse_order(answer)
        except UnparsableAnswer as exc:
            raise BrokerUnavailable(f"submit answer unreadable: {exc}") from exc

    async def cancel(self, client_order_id: str) -> None:
        """Look the order up by client_order_id, then DELETE it by Alpaca's id; a final order
        is OrderRejected with code ``order_not_open``, an unknown one OrderNotFound."""
        await self._orders.cancel(client_order_id)

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        """One PATCH /v2/orders/{id} after the look-up (see ``alpaca_lifecycle``)."""
        return await self._orders.replace(client_order_id, change)

    async def submit_bracket(
        self,
        entry: OrderRequest,
        stop_loss: OrderRequest | None,
        take_profit: OrderRequest | None,
    ) -> list[BrokerOrder]:
        """One POST /v2/orders (bracket with both exits, oto with one) -> [entry, stop loss?,
        take profit?], each leg under its request's client_order_id (for replace, cancel)."""
        return await self._orders.submit_bracket(entry, stop_loss, take_profit)

    async def adopt_bracket(
        self, entry_id: str, stop_loss_id: str | None, take_profit_id: str | None
    ) -> list[BrokerOrder]:
        """After a restart: ``submit_bracket``'s answer read back, legs under the gateway's
        ids again (Alpaca names legs itself; the gateway's journal knows which is which)."""
        return await self._orders.adopt_bracket(entry_id, stop_loss_id, take_profit_id)

    async def cancel_all(self) -> CancelReport:
        return parse_cancel_report(await self._call(self._trading.cancel_orders))

    # ------------------------------------------------------------------ streams

    @property
    def connected(self) -> bool:
        return bool(self._tasks) and all(self._up.values())

    def _emit(self, event: BrokerEvent) -> None:
        self._events.publish(event)

    async def _on_trade_update(self, data: dict[str, Any]) -> None:
        for event in await self._orders.trade_update(data):
            self._emit(event)

    async def _recover_gap(self) -> None:
        """After the trading stream came back: report the fills executed while it was down.
        On a failure the gap is kept, so the next reconnect asks again."""
        if self._gap_since is None:
            return
        events = await self._orders.recover_gap(self._gap_since)
        if events is not None:
            self._gap_since = None
            for event in events:
                self._emit(event)

    def _on_state(self, stream: str, up: bool, reason: str) -> None:
        if stream == "trading":
            if up:
                self._trading_was_up = True
            elif self._trading_was_up and self._gap_since is None:
                self._gap_since = datetime.now(UTC) - GAP_MARGIN
        self._up[stream] = up
        now = self.connected
        if now and not self._was_connected:
            self._emit(ConnectionEvent(connected=True, reason="streams connected"))
            self._up_event.set()
        elif not now and self._was_connected:
            # At once: quotes go stale from this moment, and order updates may be missed.
            self._emit(ConnectionEvent(connected=False, reason=f"{stream} stream: {reason}"))
            self._up_event.clear()
        self._was_connected = now

    async def connect(self) -> None:
        """Start both streams and wait until they are up. On timeout BrokerUnavailable is
        raised; the streams keep reconnecting and a ConnectionEvent(True) follows later."""
        if self._closed:
            raise BrokerError("this AlpacaBroker is closed")
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._trade_stream.run(), name="alpaca-trading-stream"),
                asyncio.create_task(self._data_stream.run(), name="alpaca-data-stream"),
            ]
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._up_event.wait()
        except TimeoutError:
            errors = "; ".join(
                f"{s.name}: {s.last_error or 'no answer'}"
                for s in (self._trade_stream, self._data_stream)
                if not s.up
            )
            raise BrokerUnavailable(
                f"alpaca streams not up after {self._connect_timeout_s}s ({errors})"
            ) from None

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        self._data_stream.subscribe(symbols)

    def events(self) -> AsyncIterator[BrokerEvent]:
        """Order updates, quotes and connection changes until ``close()``; every consumer gets
        them all, the first also those since the adapter was built (see ``EventFanout``)."""
        return self._events.subscribe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._data_stream.cancel_sends()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._was_connected:
            self._emit(ConnectionEvent(connected=False, reason="closed"))
        self._was_connected = False
        self._up = {"trading": False, "data": False}
        self._events.close()
        for client in (self._trading, self._data):
            client._session.close()
