"""A fake TWS / IB Gateway that speaks the TWS API wire protocol, for tests without IB.

It runs an asyncio server on 127.0.0.1 and answers ib_async's real client code: the handshake
("API\\0" + "v157..178", answered with server version 176 and a time), startApi, nextValidId
and managedAccounts, the start-up requests and their end messages, market data, orders,
executions, cancels and the global cancel.

Shape: the outgoing messages are one builder function each (``msg_*`` in ``tws_wire``, with
the book), the orders and their fills are ``tws_market`` (modify, stops, brackets, OCA), and
this module is the server: the incoming messages are dispatched through one table
(``_HANDLERS``) keyed by message id.

The market and the book (``TWSState``) live outside the server, so ``restart()`` keeps them:
orders placed before a restart are reported again, with their orderRef, after it.

Test knobs: ``set_quote`` (streams bid/ask and fills marketable orders), ``add_manual_order``
(an order typed into TWS by hand), ``stuck_orders`` (perm ids a cancel never reaches),
``reject_symbols`` (placeOrder answered with an error), ``reject_modify`` (a modify answered
with an error), ``swallow_orders`` (placeOrder lost), ``fill(..., reported_status=...)`` (a
fill whose orderStatus says otherwise),
``withhold`` (message ids never sent, e.g. an end message), ``drop_connections``, ``stop`` /
``start`` / ``restart``, ``broadcast_error`` (1100, 1102, farm status...).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

from tests.fakes.tws_market import Market, Session
from tests.fakes.tws_wire import (
    SERVER_VERSION,
    FakeOrder,
    Fields,
    TWSState,
    msg_account_download_end,
    msg_account_time,
    msg_account_update_multi,
    msg_account_update_multi_end,
    msg_account_value,
    msg_completed_order,
    msg_completed_orders_end,
    msg_contract_details,
    msg_contract_details_end,
    msg_error,
    msg_exec_details,
    msg_exec_details_end,
    msg_handshake,
    msg_managed_accounts,
    msg_market_data_type,
    msg_next_valid_id,
    msg_open_order,
    msg_open_order_end,
    msg_order_status,
    msg_portfolio,
    msg_position,
    msg_position_end,
    msg_tick_price,
)

# --- the server ------------------------------------------------------------------------------


class FakeTWS:
    """The fake TWS: start(), then point an adapter at 127.0.0.1:``port``."""

    def __init__(self, accounts: list[str] | None = None, *, port: int = 0) -> None:
        self.state = TWSState(accounts=accounts or ["DU1234567"])
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: list[Session] = []
        self.market = Market(self.state, lambda: self._sessions)
        self._changed = asyncio.Event()  # set and replaced after every message and session

    # -- lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """TWS goes away: the listener closes and every session drops."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_connections()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def drop_connections(self) -> None:
        """Cut every API socket; the listener stays, so clients can reconnect."""
        sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.writer.close()
        self._signal()
        for s in sessions:
            with contextlib.suppress(Exception):
                await s.writer.wait_closed()

    @property
    def clients(self) -> list[int]:
        return [s.client_id for s in self._sessions if s.client_id is not None]

    async def wait_until(self, check: Callable[[], bool], within_s: float = 3.0) -> None:
        """Wait until ``check()`` holds, re-checked after every message and (dis)connection."""

        async def poll() -> None:
            while not check():
                await self._changed.wait()

        await asyncio.wait_for(poll(), within_s)

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def requests_of(self, msg_id: int) -> list[tuple[int, Fields]]:
        return [(cid, f) for cid, f in self.state.requests if f[0] == str(msg_id)]

    # -- test knobs

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        self.state.quotes[symbol] = (bid, ask)
        delayed = self.state.market_data_type in (3, 4)
        for s in self._sessions:
            for req_id, sym in s.market_data.items():
                if sym == symbol:
                    s.send(msg_tick_price(req_id, 66 if delayed else 1, bid, 100))
                    s.send(msg_tick_price(req_id, 67 if delayed else 2, ask, 100))
        for o in list(self.state.orders.values()):
            if o.symbol == symbol and o.is_open:
                self.market.maybe_fill(o)

    def add_manual_order(self, symbol: str, action: str, qty: float, limit: float) -> FakeOrder:
        """An order typed into TWS by hand: order id 0, visible to client 0 and global cancel."""
        o = FakeOrder(self.market.new_perm_id(), 0, 0, self.state.accounts[0], symbol, action,
                      qty, "LMT", limit, "DAY", "")  # fmt: skip
        self.state.orders[o.perm_id] = o
        return o

    def order_by_ref(self, order_ref: str) -> FakeOrder | None:
        return next((o for o in self.state.orders.values() if o.order_ref == order_ref), None)

    def broadcast_error(self, code: int, text: str, req_id: int = -1) -> None:
        self.broadcast(msg_error(req_id, code, text))

    def broadcast(self, fields: Fields) -> None:
        """Send any message to every session (e.g. one real TWS sends unasked)."""
        for s in self._sessions:
            s.send(fields)

    # -- the connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(reader, writer, self.state.withhold)
        self._sessions.append(session)
        try:
            if await reader.readexactly(4) != b"API\0":
                return
            # "v157..178" (plus connect options after a space), without a trailing NUL
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            versions = (await reader.readexactly(size)).decode().lstrip("v").split(" ")[0]
            low, high = versions.split("..")
            if not int(low) <= SERVER_VERSION <= int(high):
                return  # TWS hangs up on a client that cannot speak its version
            session.send(msg_handshake())
            while True:
                fields = await self._read(reader)
                self.state.requests.append((session.client_id or 0, fields))
                handler = _HANDLERS.get(int(fields[0]))
                if handler is not None:
                    handler(self, session, fields)
                self._signal()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if session in self._sessions:
                self._sessions.remove(session)
            writer.close()
            self._signal()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Fields:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        text = (await reader.readexactly(size)).decode()
        return text.split("\0")[:-1]

    # -- request handlers (fields as received; index 0 is the message id)

    def _start_api(self, s: Session, f: Fields) -> None:
        client_id = int(f[2])
        if client_id in self.clients:
            s.send(msg_error(-1, 326, f"Unable to connect as the client id {client_id} is "
                             "already in use. Retry with a unique client id."))  # fmt: skip
            s.writer.close()
            return
        s.client_id = client_id
        s.send(msg_managed_accounts(self.state.accounts))
        s.send(msg_next_valid_id(self.state.next_order_id))
        s.send(msg_error(-1, 2104, "Market data farm connection is OK:usfarm"))

    def _req_ids(self, s: Session, f: Fields) -> None:
        s.send(msg_next_valid_id(self.state.next_order_id))

    def _req_positions(self, s: Session, f: Fields) -> None:
        s.positions_subscribed = True
        for symbol, (qty, cost) in self.state.positions.items():
            s.send(msg_position(self.state, self.state.accounts[0], symbol, qty, cost))
        s.send(msg_position_end())

    def _send_open_orders(self, s: Session, everyone: bool) -> None:
        for o in self.state.orders.values():
            if o.is_open and (everyone or s.sees(o)):
                s.send(msg_open_order(self.state, o))
                s.send(msg_order_status(o))
        s.send(msg_open_order_end())

    def _req_open_orders(self, s: Session, f: Fields) -> None:
        self._send_open_orders(s, everyone=False)

    def _req_all_open_orders(self, s: Session, f: Fields) -> None:
        self._send_open_orders(s, everyone=True)

    def _req_completed_orders(self, s: Session, f: Fields) -> None:
        # Only ever on request: an unsolicited completedOrder makes ib_async raise (issue 128).
        for o in self.state.orders.values():
            if not o.is_open:
                s.send(msg_completed_order(self.state, o))
        s.send(msg_completed_orders_end())

    def _req_account_updates(self, s: Session, f: Fields) -> None:
        account = f[3] or self.state.accounts[0]
        s.account_subscribed = account if f[2] == "1" else ""
        if not s.account_subscribed:
            return
        for tag, value in self.state.account_values.items():
            s.send(msg_account_value(tag, value, account))
        for symbol, (qty, cost) in self.state.positions.items():
            s.send(msg_portfolio(self.state, account, symbol, qty, cost))
        s.send(msg_account_time())
        s.send(msg_account_download_end(account))

    def _req_account_updates_multi(self, s: Session, f: Fields) -> None:
        req_id, account = int(f[2]), f[3]
        for tag, value in self.state.account_values.items():
            s.send(msg_account_update_multi(req_id, account, tag, value))
        s.send(msg_account_update_multi_end(req_id))

    def _req_executions(self, s: Session, f: Fields) -> None:
        req_id = int(f[2])
        for ex in self.state.executions:
            if s.sees(ex.order):
                s.send(msg_exec_details(self.state, req_id, ex))
        s.send(msg_exec_details_end(req_id))

    def _req_contract_details(self, s: Session, f: Fields) -> None:
        req_id, symbol = int(f[2]), f[4]  # 9, version, reqId, contract (symbol 2nd), ...
        if symbol in self.state.unknown_symbols:
            s.send(msg_error(req_id, 200, "No security definition has been found for the "
                             "request"))  # fmt: skip
            return
        s.send(msg_contract_details(self.state, req_id, symbol))
        s.send(msg_contract_details_end(req_id))

    def _req_mkt_data(self, s: Session, f: Fields) -> None:
        req_id, symbol = int(f[2]), f[4]  # f[3:15] is the contract; symbol is its 2nd field
        s.market_data[req_id] = symbol
        delayed = self.state.market_data_type in (3, 4)
        s.send(msg_market_data_type(req_id, self.state.market_data_type))
        if symbol in self.state.quotes:
            bid, ask = self.state.quotes[symbol]
            s.send(msg_tick_price(req_id, 66 if delayed else 1, bid, 100))
            s.send(msg_tick_price(req_id, 67 if delayed else 2, ask, 100))

    def _cancel_mkt_data(self, s: Session, f: Fields) -> None:
        s.market_data.pop(int(f[2]), None)

    def _place_order(self, s: Session, f: Fields) -> None:
        self.market.place(s, f)

    def _cancel_order(self, s: Session, f: Fields) -> None:
        self.market.cancel_request(s, f)

    def _global_cancel(self, s: Session, f: Fields) -> None:
        for o in list(self.state.orders.values()):
            if o.is_open:
                self.market.cancel(o)

    # -- the market

    def fill(
        self, o: FakeOrder, qty: float, price: float, reported_status: str | None = None
    ) -> None:
        """Execute ``qty`` of an open order at ``price``; ``reported_status`` is what IB's
        orderStatus then claims (e.g. "Cancelled": a cancel that raced the fill)."""
        self.market.fill(o, qty, price, reported_status)


_Handler = Callable[[FakeTWS, Session, Fields], None]

_HANDLERS: dict[int, _Handler] = {
    1: FakeTWS._req_mkt_data,
    2: FakeTWS._cancel_mkt_data,
    3: FakeTWS._place_order,
    4: FakeTWS._cancel_order,
    5: FakeTWS._req_open_orders,
    6: FakeTWS._req_account_updates,
    7: FakeTWS._req_executions,
    8: FakeTWS._req_ids,
    9: FakeTWS._req_contract_details,
    16: FakeTWS._req_all_open_orders,
    58: FakeTWS._global_cancel,
    61: FakeTWS._req_positions,
    71: FakeTWS._start_api,
    76: FakeTWS._req_account_updates_multi,
    99: FakeTWS._req_completed_orders,
}
