"""``IBBroker``: Interactive Brokers through TWS / IB Gateway, on ib_async.

How it fits together:

- **Connection.** ``connect()`` runs ib_async's ``connectAsync`` with the given client id and
  ``raiseSyncErrors``, so it returns only once the first positions, open orders, completed
  orders, account values and executions have arrived. With several managed accounts and no
  ``account`` it refuses to start. On a dropped socket it emits ``ConnectionEvent(False)`` at
  once and reconnects with exponential backoff and jitter (``ib_reconnect``), then reconciles
  its book and emits ``ConnectionEvent(True)``. IB's own link codes (1100 lost, 1101/1102
  restored, 2110) move the same switch while the socket stays up; farm codes (2103-2108) are
  only logged, because quote age, not the connection, decides whether prices are usable (see
  ``ib_quotes``). With no TWS listening, ``connect()`` says so in one line naming host, port
  and what to check.
- **Orders.** IB has no client order id: ``orderRef`` carries ours, and the book
  (``ib_book``) is keyed by it, so an order is recognised again after a reconnect or a restart
  of this process. Order ids come from ib_async's sequence, seeded by IB's nextValidId and never
  below an id this adapter already used; ``broker_order_id`` is the IB orderId as a string and
  never changes once ``submit`` returns, a modify included. Submit, cancel, ``replace``
  (placeOrder on the same orderId) and ``submit_bracket`` (parent and children in one OCA
  group) are ``ib_orders``'s.
- **Fills missed while away.** After a reconnect of the socket, connectAsync's reqExecutions
  brings the day's executions, and the book reports each one it had not seen (by IB's execId,
  the ``fill_id``), before ``ConnectionEvent(True)``; after IB's own link comes back with the
  socket up (1101/1102) the adapter asks reqExecutions itself. A "Cancelled" for an order whose
  executions filled it is reported as filled.
- **Kill switch.** ``cancel_all`` lists every open order of the account (``reqAllOpenOrders``:
  other client ids and orders typed into TWS included), sends one ``reqGlobalCancel`` and then
  confirms order by order: this client's orders by their Cancelled status, the others by
  polling until IB no longer lists them. What is not confirmed within ``cancel_timeout`` is
  reported in ``CancelReport.failed``. Other clients' orders are reported as ``perm:<permId>``
  (their order ids are only unique per client id).
- **Pacing.** ib_async throttles outgoing messages; it is set to ``max_requests_per_s`` (45,
  below IB's limit of 50 a second).
- **Errors.** Every ib_async / socket exception is translated here into ``brokers.errors``.
- **Library traps.** A completedOrder that arrives with no request pending makes ib_async's
  decoder raise (issue 128); it stays a logged error there, and this adapter only asks for
  completed orders at connect. TWS's nightly reset can keep the socket up while data stops:
  quotes then age (their ``ts`` is the arrival time), which is what the gateway checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Coroutine, Iterable
from typing import Any

from ib_async import IB, Contract, Trade
from ib_async import Fill as IBFill

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
    QuoteEvent,
)
from brokers.errors import BrokerError, BrokerUnavailable, NotSent
from brokers.events import EventFanout
from brokers.ib import mapping as m
from brokers.ib.book import OrderBook
from brokers.ib.contracts import Contracts
from brokers.ib.executions import fills_of
from brokers.ib.kill import confirm_cancels, list_open_orders
from brokers.ib.orders import OrderDesk
from brokers.ib.quotes import DELAYED, LIVE, QuoteBook
from brokers.ib.reconnect import reconnect

log = logging.getLogger(__name__)


def default_port(paper: bool = True, gateway: bool = True) -> int:
    """IB's default API port: IB Gateway 4002 paper / 4001 live, TWS 7497 paper / 7496 live."""
    if gateway:
        return 4002 if paper else 4001
    return 7497 if paper else 7496


class IBBroker:
    """The ``Broker`` protocol on TWS / IB Gateway.

    ``port`` defaults to IB's port for the mode (``default_port(paper, gateway)``); ``account``
    picks one of several managed accounts; ``primary_exchange`` and ``currency`` shape the
    stock contracts (routed SMART); ``allow_delayed_data`` admits delayed quotes (aged by the
    delay). The timeouts bound every wait on IB; ``reconnect_*`` shape the backoff and
    ``max_requests_per_s`` the outgoing pacing.
    """

    name = "ib"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        client_id: int = 17,
        *,
        account: str | None = None,
        paper: bool = True,
        gateway: bool = True,
        primary_exchange: str = "",
        currency: str = "USD",
        allow_delayed_data: bool = False,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        ack_timeout: float = 5.0,
        quote_timeout: float = 5.0,
        cancel_timeout: float = 10.0,
        cancel_poll_s: float = 0.5,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        max_requests_per_s: int = 45,
    ) -> None:
        self.host = host
        self.port = port if port is not None else default_port(paper, gateway)
        self.client_id = client_id
        self.paper = paper
        self._account_wanted = account
        self.account_id = account or ""
        self._currency = currency
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._quote_timeout = quote_timeout
        self._cancel_timeout = cancel_timeout
        self._cancel_poll_s = cancel_poll_s
        self._backoff = (reconnect_initial_s, reconnect_max_s)
        self._max_requests = max_requests_per_s
        self._book = OrderBook()
        self._desk = OrderDesk(
            self._book, client_id=client_id, link=self._require_link, contract=self._contract,
            account=lambda: self.account_id, ack_timeout=ack_timeout,
        )  # fmt: skip
        self._quotes = QuoteBook(allow_delayed=allow_delayed_data)
        self._events = EventFanout()
        self._ib: IB | None = None
        self._link_up = False
        self._lost_code = 0  # 1100 or 2110 while the socket stays up; 0 when the link is fine
        self._closing = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._cancel_lock = asyncio.Lock()
        self._contracts = Contracts(
            primary_exchange=primary_exchange, currency=currency, request_timeout=request_timeout
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.farms: dict[int, str] = {}  # last farm status message per code, for status pages

    # -- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link_up and self._ib is not None and self._ib.isConnected()

    async def connect(self) -> None:
        if self.connected:
            return
        self._closing = False
        await self._connect_once()

    async def close(self) -> None:
        self._closing = True
        tasks = [*self._tasks, *([self._reconnect_task] if self._reconnect_task else [])]
        self._reconnect_task = None
        for task in tasks:
            task.cancel()
        # Their ends (cancelled, or failed) are not ours to raise; a cancel of close() itself
        # still reaches its caller (suppressing CancelledError around each await would not).
        await asyncio.gather(*tasks, return_exceptions=True)
        self._link_up = False
        if self._ib is not None:
            self._ib.disconnect()
        self._events.close()

    def _make_ib(self) -> IB:
        ib = IB()
        # Pacing: IB allows ~50 messages a second; ib_async queues what goes beyond this.
        ib.client.MaxRequests = self._max_requests
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        ib.orderStatusEvent += self._on_trade
        ib.openOrderEvent += self._on_open_order
        ib.execDetailsEvent += self._on_exec
        ib.pendingTickersEvent += self._on_tickers
        return ib

    async def _connect_once(self) -> None:
        if self._ib is None:
            self._ib = self._make_ib()
        ib = self._ib
        try:
            await ib.connectAsync(
                self.host,
                self.port,
                self.client_id,
                timeout=self._connect_timeout,
                account=self._account_wanted or "",
                raiseSyncErrors=True,  # ready only once positions, orders, account are in
            )
        except (TimeoutError, OSError) as exc:  # ConnectionError is an OSError
            raise m.connect_failure(
                exc, self.host, self.port, self.client_id, self._connect_timeout
            ) from None
        try:
            self.account_id = m.pick_account(self._account_wanted, ib.managedAccounts())
        except BrokerError:
            ib.disconnect()
            raise
        self._emit_all(self._book.reconcile(ib.trades(), ib.fills(), self.client_id))
        # Never hand out an order id this client already used (in this process or, as IB's
        # reports show, before it), whatever nextValidId says.
        ib.client.updateReqId(self._book.max_order_id + 1)  # type: ignore[no-untyped-call]
        ib.reqMarketDataType(DELAYED if self._quotes.allow_delayed else LIVE)
        # No await since connectAsync returned, so no socket callback can have run in between:
        # from here on a drop is seen by _on_disconnected.
        self._link_up, self._lost_code = True, 0
        for symbol in self._quotes.symbols:  # ib_async forgot its tickers with the socket
            self._spawn(self._request_market_data(symbol), f"ib-mktdata-{symbol}")
        log.info("IB connected: %s:%s client %s account %s", self.host, self.port,
                 self.client_id, self.account_id)  # fmt: skip
        self._emit(ConnectionEvent(connected=True, reason="connected"))

    def events(self) -> AsyncIterator[BrokerEvent]:
        """Order updates, quotes and connection changes until ``close()``; the first caller
        also gets everything since the adapter was built (see ``EventFanout``)."""
        return self._events.subscribe()

    def _emit(self, event: BrokerEvent) -> None:
        self._events.publish(event)

    def _emit_all(self, events: Iterable[BrokerEvent]) -> None:
        for event in events:
            self._events.publish(event)

    def _on_disconnected(self) -> None:
        if self._closing or not self._link_up:
            return
        self._link_up = False
        self._emit(ConnectionEvent(connected=False, reason="socket to TWS/IB Gateway closed"))
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect(), name=f"ib-reconnect-{self.client_id}"
            )

    async def _reconnect(self) -> None:
        initial, ceiling = self._backoff
        await reconnect(self._connect_once, closing=lambda: self._closing, initial_s=initial,
                        max_s=ceiling)  # fmt: skip

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        reason = f"{code}: {message}"
        if code in m.LINK_DOWN_CODES:  # the socket is up, but TWS lost IB's servers
            self._lost_code = code
            if self._link_up:
                self._link_up = False
                self._emit(ConnectionEvent(connected=False, reason=reason))
        elif self._lost_code and (
            code in m.LINK_UP_CODES or (self._lost_code == 2110 and code in m.FARM_OK_CODES)
        ):
            # 1101/1102 answer 1100; 2110 has no pair of its own, a farm back OK ends it.
            self._lost_code = 0
            if self._ib is not None and self._ib.isConnected() and not self._link_up:
                if code == m.DATA_LOST_CODE:  # subscriptions are gone: ask again
                    for symbol in self._quotes.symbols:
                        self._spawn(self._request_market_data(symbol, again=True), "ib-mktdata")
                self._link_up = True
                self._emit(ConnectionEvent(connected=True, reason=reason))
                self._spawn(self._catch_up_fills(), "ib-executions")
        elif code in m.FARM_BROKEN_CODES or code in m.FARM_OK_CODES:
            self.farms[code] = message
            log.log(logging.WARNING if code in m.FARM_BROKEN_CODES else logging.INFO,
                    "IB farm status %s", reason)  # fmt: skip
        elif self._desk.on_error(req_id, code, message):
            log.warning("IB refused a modify of order %s: %s", req_id, reason)
        elif (order := self._book.by_id(req_id)) is not None:
            log.warning("IB error on order %s (%s): %s", req_id, order.client_order_id, reason)

    # -- orders ----------------------------------------------------------------------------

    async def submit(self, order: OrderRequest) -> BrokerOrder:
        return await self._desk.submit(order)

    async def submit_bracket(
        self, entry: OrderRequest, stop_loss: OrderRequest | None, take_profit: OrderRequest | None
    ) -> list[BrokerOrder]:
        """The entry and its exits as IB parent and child orders in one OCA group; answers
        [entry, stop_loss?, take_profit?] (see ``brokers.ib.orders``)."""
        return await self._desk.submit_bracket(entry, stop_loss, take_profit)

    async def cancel(self, client_order_id: str) -> None:
        await self._desk.cancel(client_order_id)

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        return await self._desk.replace(client_order_id, change)

    async def cancel_all(self) -> CancelReport:
        ib = self._require_link()
        async with self._cancel_lock:
            with m.vendor_errors("cancel_all"):
                foreign = await list_open_orders(ib, self._book, self._request_timeout)
                own = {o.broker_order_id: o for o in self._book.open()}
                # one message; it also reaches other client ids and orders typed into TWS
                ib.reqGlobalCancel()  # type: ignore[no-untyped-call]
                return await confirm_cancels(
                    ib, self._book, own, foreign, within_s=self._cancel_timeout,
                    poll_s=self._cancel_poll_s, request_timeout=self._request_timeout,
                )  # fmt: skip

    async def open_orders(self) -> list[BrokerOrder]:
        return [o.snapshot() for o in self._book.open()]

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        tracked = self._book.by_ref(client_order_id)
        return tracked.snapshot() if tracked is not None else None

    def _on_trade(self, trade: Trade) -> None:
        self._emit_all(self._book.on_trade(trade, self.client_id))

    def _on_open_order(self, trade: Trade) -> None:
        self._emit_all(self._book.on_trade(trade, self.client_id, open_order=True))

    def _on_exec(self, trade: Trade, fill: IBFill) -> None:
        self._emit_all(self._book.on_exec(fill.execution, self.client_id))

    async def _catch_up_fills(self) -> None:
        """The day's executions, after IB's link came back with the socket up (1101/1102):
        a fill made while TWS was cut off from IB is not always pushed afterwards. (After a
        reconnect of the socket, connectAsync asks for them itself; see reconcile.) The book
        reports each execution once, by its execId."""
        ib = self._require_link()
        with m.vendor_errors("executions after IB's link came back"):
            fills = await asyncio.wait_for(ib.reqExecutionsAsync(), self._request_timeout)
        for fill in fills:
            self._emit_all(self._book.on_exec(fill.execution, self.client_id))

    async def executions(self, client_order_ids: Collection[str]) -> list[Fill]:
        """The executions IB still holds for these orders (see ``executions.py``)."""
        ib = self._require_link()
        with m.vendor_errors("executions"):
            fills = await asyncio.wait_for(ib.reqExecutionsAsync(), self._request_timeout)
        return fills_of(fills, client_order_ids, self.client_id)

    # -- quotes, account, positions -------------------------------------------------------

    def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            if self._quotes.want(symbol) and self.connected:
                self._spawn(self._request_market_data(symbol), f"ib-mktdata-{symbol}")

    async def _request_market_data(self, symbol: str, again: bool = False) -> None:
        try:
            contract = await self._contract(symbol)
            ib = self._require_link()
            with m.vendor_errors(f"market data for {symbol}"):
                if again:
                    ib.cancelMktData(contract)
                ib.reqMktData(contract, "", False, False)
        except BrokerError as exc:  # quote() reports the absence; the reason is logged here
            log.error("IB market data for %s not requested: %s", symbol, exc)

    async def _contract(self, symbol: str) -> Contract:
        return await self._contracts.get(self._require_link(), symbol)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("IB task %s failed", task.get_name(), exc_info=task.exception())

    def _on_tickers(self, tickers: Iterable[Any]) -> None:
        for ticker in tickers:
            quote = self._quotes.update(ticker.contract.symbol, ticker)
            if quote is not None:
                self._emit(QuoteEvent(quote=quote))

    async def quote(self, symbol: str) -> Quote:
        self.subscribe_quotes([symbol])
        quote = await self._quotes.wait(symbol, self._quote_timeout)
        if quote is None:
            raise BrokerUnavailable(f"no IB quote for {symbol} within {self._quote_timeout}s")
        return quote

    async def account(self) -> Account:
        # Only while linked: ib_async empties its account state when the socket drops.
        ib = self._require_link()
        return m.account_from(ib.accountValues(self.account_id), self._currency)

    async def positions(self) -> list[Position]:
        # Only while linked: after a drop ib_async's positions are empty, which is not "flat".
        ib = self._require_link()
        return m.positions_from(ib.positions(self.account_id), ib.portfolio(self.account_id))

    # -- helpers ---------------------------------------------------------------------------

    # Without a link nothing is sent at all: NotSent, so a submit is retried without a look-up.
    def _require_ib(self) -> IB:
        if self._ib is None:
            raise NotSent("IB adapter not connected yet")
        return self._ib

    def _require_link(self) -> IB:
        ib = self._require_ib()
        if not self.connected:
            raise NotSent("IB link is down")
        return ib
