"""Pure translations between ib_async's objects and ``brokers.base`` types for ``IBBroker``.

Nothing here does I/O: contracts and orders going out, statuses and error codes coming in.

IB's order states map onto the gateway's as follows (``OrderStatus`` of ib_async → ours):

    PendingSubmit, ApiPending      new               (sent, IB has not acknowledged yet)
    PreSubmitted, Submitted        accepted          (partially_filled once a fill arrived)
    PendingCancel                  pending_cancel
    Cancelled, ApiCancelled        canceled          (rejected when an order error caused it)
    Filled                         filled
    Inactive                       rejected          (IB keeps it but will not work it)
    ValidationError                (no change: ib_async's name for a warning on a live order)

Order types (ours → IB's): market MKT, limit LMT (lmtPrice), stop STP (the stop in auxPrice),
stop_limit STP LMT (lmtPrice and auxPrice). Any other IB type is not mapped (never guessed).

Error codes (https://interactivebrokers.github.io/tws-api/message_codes.html):

    1100              connectivity between TWS and IB lost        -> link down
    1101, 1102        connectivity restored (1101: data lost)     -> link up (1101 resubscribes)
    2110              TWS <-> server connectivity broken          -> link down, until 1101/1102
                                                                     or a farm reports OK
    2103, 2105, 2157  a data farm is broken                       -> logged; quote age decides
    2104, 2106, 2107, 2108, 2158  a data farm is OK / on demand   -> logged
    326               client id already in use                    -> connect fails (unavailable)
    an error that makes ib_async cancel a new order (201, 203, 103, 110, 200, ...), and
    201 at any time                                               -> rejected with IB's reason
    202               order cancelled                             -> canceled
    10147, 10148, 161 cancel not possible (unknown / done order)  -> logged; the order's own
                                                                     status tells the truth
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from ib_async import Contract, LimitOrder, MarketOrder, Order, Stock, StopLimitOrder, StopOrder
from ib_async.wrapper import RequestError

from brokers.base import (
    Account,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    to_decimal,
)
from brokers.errors import BrokerError, BrokerUnavailable, OrderRejected

LINK_DOWN_CODES = frozenset({1100, 2110})
LINK_UP_CODES = frozenset({1101, 1102})
DATA_LOST_CODE = 1101
FARM_BROKEN_CODES = frozenset({2103, 2105, 2157})
FARM_OK_CODES = frozenset({2104, 2106, 2107, 2108, 2158})
CANCELLED_CODE = 202

_TIF = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}
_TIF_BACK = {v: k for k, v in _TIF.items()}

_STATUS = {
    "PendingSubmit": OrderStatus.NEW,
    "ApiPending": OrderStatus.NEW,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.REJECTED,
}

TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


def stock(symbol: str, *, primary_exchange: str = "", currency: str = "USD") -> Contract:
    """A US stock routed through SMART; the primary exchange only disambiguates the listing."""
    return Stock(symbol, "SMART", currency, primaryExchange=primary_exchange)


def ib_order(request: OrderRequest, *, account: str) -> Order:
    """The ib_async order for a request; ``orderRef`` carries the client order id, because IB
    has no client order id of its own and orderRef is what survives a reconnect or restart.
    Stops: IB's "STP" carries the stop in ``auxPrice``; "STP LMT" the limit in ``lmtPrice``
    and the stop in ``auxPrice``."""
    action = "BUY" if request.side is Side.BUY else "SELL"
    quantity = float(request.quantity)
    limit, stop = request.limit_price, request.stop_price
    order: Order
    # OrderRequest's validator guarantees the prices each type needs
    if request.order_type is OrderType.LIMIT and limit is not None:
        order = LimitOrder(action, quantity, float(limit))
    elif request.order_type is OrderType.STOP and stop is not None:
        order = StopOrder(action, quantity, float(stop))
    elif request.order_type is OrderType.STOP_LIMIT and limit is not None and stop is not None:
        order = StopLimitOrder(action, quantity, float(limit), float(stop))
    else:
        order = MarketOrder(action, quantity)
    order.tif = _TIF[request.time_in_force]
    order.orderRef = request.client_order_id
    order.account = account
    order.transmit = True
    return order


def side_of(action: str) -> Side:
    """IB's order action (BUY/SELL) or execution side (BOT/SLD)."""
    return Side.BUY if action.upper() in ("BUY", "BOT") else Side.SELL


_ORDER_TYPES = {
    "MKT": OrderType.MARKET,
    "LMT": OrderType.LIMIT,
    "STP": OrderType.STOP,
    "STP LMT": OrderType.STOP_LIMIT,
}


def order_type_of(ib_type: str) -> OrderType | None:
    """Our order type for IB's; None for one this adapter never sends (a trailing stop typed
    into TWS, say, must not pass for a market order)."""
    return _ORDER_TYPES.get(ib_type.upper().strip())


def limit_of(order_type: OrderType, lmt_price: float | Decimal | None) -> Decimal | None:
    """The limit price IB reports, on the types that have one (IB sends 0 on the others)."""
    return price_or_none(lmt_price) if order_type.has_limit else None


def stop_of(order_type: OrderType, aux_price: float | Decimal | None) -> Decimal | None:
    """The stop price (IB's ``auxPrice``), on the types that have one."""
    return price_or_none(aux_price) if order_type.has_stop else None


def tif_of(ib_tif: str) -> TimeInForce:
    return _TIF_BACK.get(ib_tif.upper(), TimeInForce.DAY)


def status_of(ib_status: str) -> OrderStatus | None:
    """Our status for IB's, or None when IB's says nothing new (e.g. ValidationError)."""
    return _STATUS.get(ib_status)


def price_or_none(value: float | Decimal | None) -> Decimal | None:
    """IB marks an absent price with 0, -1, NaN or the 'unset' double (1.7976931348623157e308)."""
    if value is None or not math.isfinite(value) or value <= 0 or value >= 1e300:
        return None
    return Decimal(repr(float(value)))


def error_code(reason: str | None) -> str | None:
    """IB's error code out of ib_async's message ("Error 201, reqId 5: ...")."""
    if reason and reason.startswith(("Error ", "Warning ")):
        return reason.split()[1].rstrip(",")
    return None


@contextlib.contextmanager
def vendor_errors(action: str) -> Iterator[None]:
    """Translate ib_async and socket errors into the project's own, at this one edge."""
    try:
        yield
    except BrokerError:
        raise
    except RequestError as exc:
        raise OrderRejected(f"{action}: {exc.message}", code=str(exc.code)) from exc
    except (TimeoutError, OSError) as exc:  # ConnectionError is an OSError
        raise BrokerUnavailable(f"{action}: {exc!r}") from exc


def connect_failure(
    exc: BaseException, host: str, port: int, client_id: int, timeout_s: float
) -> BrokerUnavailable:
    """One line saying what failed when connecting to TWS / IB Gateway, and what to check."""
    where = f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        text = (
            f"no TWS/IB Gateway API at {where}: is it running, with the API enabled and this "
            "port configured?"
        )
    elif isinstance(exc, TimeoutError):
        text = (
            f"TWS/IB Gateway at {where} did not complete the API handshake within {timeout_s}s: "
            f"is the API enabled, this host trusted, and client id {client_id} free?"
        )
    elif isinstance(exc, ConnectionError) and exc.args and isinstance(exc.args[0], list):
        # ib_async's start-up requests that timed out ("positions request timed out", ...)
        text = (
            f"TWS/IB Gateway at {where} (client {client_id}) did not send its start-up data: "
            f"{'; '.join(str(e) for e in exc.args[0])}"
        )
    else:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        text = (
            f"cannot reach TWS/IB Gateway at {where} (client {client_id}): {detail}: is it "
            "running, with the API enabled and this port configured?"
        )
    return BrokerUnavailable(" ".join(text.split()))


def account_from(values: Iterable[Any], currency: str) -> Account:
    """Account from IB's account values (NetLiquidation, TotalCashValue, BuyingPower).

    ``day_start_equity`` is PreviousDayEquityWithLoanValue (IB's equity with loan value at the
    previous close), or None when IB does not send it.
    """
    by_key = {(v.tag, v.currency): v.value for v in values}

    def pick(tag: str) -> Decimal | None:
        for cur in (currency, "BASE", ""):  # the base currency first, then IB's aggregate
            raw = by_key.get((tag, cur))
            if raw not in (None, ""):
                return to_decimal(raw)
        return None

    equity, cash, power = pick("NetLiquidation"), pick("TotalCashValue"), pick("BuyingPower")
    if equity is None or cash is None or power is None:
        raise BrokerUnavailable(
            "IB account values (NetLiquidation, TotalCashValue, BuyingPower) not received yet"
        )
    previous = pick("PreviousDayEquityWithLoanValue")
    return Account(
        equity=equity,
        cash=cash,
        buying_power=power,
        day_start_equity=previous if previous is not None and previous > 0 else None,
    )


def positions_from(positions: Iterable[Any], portfolio: Iterable[Any]) -> list[Position]:
    """Signed positions (short < 0); the market price comes from the portfolio updates."""
    marks = {p.contract.conId: p.marketPrice for p in portfolio}
    return [
        Position(
            symbol=p.contract.symbol,
            qty=to_decimal(p.position),
            avg_price=to_decimal(max(p.avgCost, 0.0)),
            market_price=price_or_none(marks.get(p.contract.conId)),
        )
        for p in positions
    ]


def pick_account(wanted: str | None, accounts: list[str]) -> str:
    """The account to trade: the configured one, or the only one; anything else refuses."""
    if wanted:
        if wanted not in accounts:
            raise BrokerError(
                f"IB account {wanted!r} is not among the managed accounts "
                f"{accounts}", code="account_unknown")  # fmt: skip
        return wanted
    if len(accounts) != 1:
        raise BrokerError(
            f"IB manages {len(accounts)} accounts {accounts}: configure which one to "
            "trade (account=...)", code="account_ambiguous")  # fmt: skip
    return accounts[0]
