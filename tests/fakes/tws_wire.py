"""The fake TWS's wire half: its book (``TWSState``, ``FakeOrder``, ``FakeExecution``) and one
builder per outgoing message (``msg_*``), each returning the exact field list ib_async's
decoder expects at server version 176 (a field too many or too few is swallowed by the
decoder, so counts matter; ``tests/integration/ib/test_fake_wire.py`` checks each builder
against the real decoder). The server that sends them is ``tests.fakes.fake_tws``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

SERVER_VERSION = 176

Fields = list[str]


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")


@dataclass
class FakeOrder:
    perm_id: int
    order_id: int  # 0 for an order typed into TWS by hand
    client_id: int
    account: str
    symbol: str
    action: str  # BUY | SELL
    quantity: float
    order_type: str  # MKT | LMT | STP | STP LMT
    limit_price: float | None
    tif: str
    order_ref: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    aux_price: float | None = None  # the stop of STP and STP LMT
    parent_id: int = 0  # a bracket child: its parent's order id (same client id)
    oca_group: str = ""
    oca_type: int = 0
    transmitted: bool = True  # False: TWS holds it until an order of its bracket transmits
    triggered: bool = False  # a stop whose price the market reached

    @property
    def is_open(self) -> bool:
        return self.status not in ("Filled", "Cancelled", "ApiCancelled", "Inactive")


@dataclass
class FakeExecution:
    exec_id: str
    order: FakeOrder
    shares: float
    price: float
    time: str
    cum_qty: float
    avg_price: float


@dataclass
class TWSState:
    """Everything that survives a TWS restart."""

    accounts: list[str]
    account_values: dict[str, float] = field(
        default_factory=lambda: {
            "NetLiquidation": 100_000.0,
            "TotalCashValue": 100_000.0,
            "BuyingPower": 400_000.0,
            "PreviousDayEquityWithLoanValue": 99_500.0,
        }
    )
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # sym -> qty, cost
    orders: dict[int, FakeOrder] = field(default_factory=dict)  # perm id -> order
    executions: list[FakeExecution] = field(default_factory=list)
    quotes: dict[str, tuple[float, float]] = field(default_factory=dict)
    market_data_type: int = 1  # 1 live, 3 delayed
    next_order_id: int = 1
    next_perm_id: int = 900_000
    stuck_orders: set[int] = field(default_factory=set)  # perm ids a cancel never reaches
    reject_symbols: dict[str, tuple[int, str]] = field(default_factory=dict)
    unknown_symbols: set[str] = field(default_factory=set)  # no contract definition
    reject_modify: dict[str, tuple[int, str]] = field(default_factory=dict)  # orderRef -> error
    swallow_orders: bool = False  # placeOrder is lost on the way (no order, no answer)
    withhold: set[str] = field(default_factory=set)  # message ids never sent (e.g. "62")
    status_first: bool = False  # on a fill, orderStatus before execDetails
    requests: list[tuple[int, Fields]] = field(default_factory=list)  # (client id, fields)

    def con_id(self, symbol: str) -> int:
        return 100_000 + sum(ord(c) * 31**i for i, c in enumerate(symbol)) % 800_000


# --- outgoing messages: one builder each, exact field counts for server version 176 ----------


def _contract(state: TWSState, symbol: str) -> Fields:
    """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency:
    the contract block of openOrder, execDetails and position, which the callers complete with
    localSymbol and tradingClass."""
    return [str(state.con_id(symbol)), symbol, "STK", "", "0", "", "", "SMART", "USD"]


def msg_handshake() -> Fields:
    return [str(SERVER_VERSION), now_text()]


def msg_next_valid_id(order_id: int) -> Fields:
    return ["9", "1", str(order_id)]


def msg_managed_accounts(accounts: list[str]) -> Fields:
    return ["15", "1", ",".join(accounts)]


def msg_error(req_id: int, code: int, text: str) -> Fields:
    return ["4", "2", str(req_id), str(code), text, ""]  # last: advancedOrderRejectJson (>=166)


def msg_tick_price(req_id: int, tick_type: int, price: float, size: float) -> Fields:
    return ["1", "6", str(req_id), str(tick_type), _num(price), _num(size), "0"]


def msg_market_data_type(req_id: int, data_type: int) -> Fields:
    return ["58", "1", str(req_id), str(data_type)]


def msg_position(state: TWSState, account: str, symbol: str, qty: float, cost: float) -> Fields:
    return ["61", "3", account, *_contract(state, symbol), symbol, symbol, _num(qty), _num(cost)]


def msg_position_end() -> Fields:
    return ["62", "1"]


def msg_account_value(tag: str, value: float, account: str) -> Fields:
    return ["6", "2", tag, _num(value), "USD", account]


def msg_portfolio(state: TWSState, account: str, symbol: str, qty: float, cost: float) -> Fields:
    bid, ask = state.quotes.get(symbol, (cost, cost))
    mark = (bid + ask) / 2
    c = _contract(state, symbol)
    # updatePortfolio carries primaryExchange where the others carry exchange
    contract = [*c[:7], "NASDAQ", "USD", symbol, symbol]
    return ["7", "8", *contract, _num(qty), _num(mark), _num(qty * mark), _num(cost), "0", "0",
            account]  # fmt: skip


def msg_account_time() -> Fields:
    return ["8", "1", datetime.now(UTC).strftime("%H:%M")]


def msg_account_download_end(account: str) -> Fields:
    return ["54", "1", account]


def msg_account_update_multi(req_id: int, account: str, tag: str, value: float) -> Fields:
    return ["73", "1", str(req_id), account, "", tag, _num(value), "USD"]


def msg_account_update_multi_end(req_id: int) -> Fields:
    return ["74", "1", str(req_id)]


def _price(value: float | None) -> str:
    return "" if value is None else _num(value)


def msg_open_order(state: TWSState, o: FakeOrder) -> Fields:
    lmt, aux = _price(o.limit_price), _price(o.aux_price)
    head = [
        "5", str(o.order_id), *_contract(state, o.symbol), o.symbol, o.symbol,
        o.action, _num(o.quantity), o.order_type, lmt, aux, o.tif, o.oca_group, o.account, "O",
        "0",
        o.order_ref, str(o.client_id), str(o.perm_id), "0", "0", "0", "", "", "", "", "",
        "",  # faProfile: only below server version 177
    ]  # fmt: skip
    # modelCode .. volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
    body = [""] * 27 + ["", ""]
    body[19], body[23] = str(o.oca_type), str(o.parent_id)  # ocaType, parentId
    tail = [
        "0", "", "", "", "", "", "",  # continuousUpdate .. comboLegsDescrip
        "0", "0", "0",  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        "0", "", "", "0", "0",  # optOutSmartRouting, clearing x2, notHeld, dncPresent
        "",  # algoStrategy
        "0", "0", o.status, *[""] * 14, "0", "0",  # solicited, whatIf, order state, randomize
        "0",  # conditions
        *[""] * 16,  # adjustedOrderType .. usePriceMgmtAlgo
        "", "", "",  # duration, postToAts, autoCancelParent
        "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf (>= 170)
    ]  # fmt: skip
    return head + body + tail


def msg_open_order_end() -> Fields:
    return ["53", "1"]


def msg_order_status(o: FakeOrder, last_price: float = 0.0) -> Fields:
    return [
        "3", str(o.order_id), o.status, _num(o.filled), _num(o.quantity - o.filled),
        _num(o.avg_price), str(o.perm_id), str(o.parent_id), _num(last_price), str(o.client_id),
        "", "",
    ]  # fmt: skip


def msg_exec_details(state: TWSState, req_id: int, ex: FakeExecution) -> Fields:
    o = ex.order
    side = "BOT" if o.action == "BUY" else "SLD"
    return [
        "11", str(req_id), str(o.order_id), *_contract(state, o.symbol), o.symbol, o.symbol,
        ex.exec_id, ex.time, o.account, "ISLAND", side, _num(ex.shares), _num(ex.price),
        str(o.perm_id), str(o.client_id), "0", _num(ex.cum_qty), _num(ex.avg_price),
        o.order_ref, "", "", "", "1",
    ]  # fmt: skip


def msg_exec_details_end(req_id: int) -> Fields:
    return ["55", "1", str(req_id)]


def msg_commission_report(exec_id: str) -> Fields:
    return ["59", "1", exec_id, "1.0", "USD", "", "", ""]


def msg_completed_order(state: TWSState, o: FakeOrder) -> Fields:
    """A done order (no order id or client id in this message: IB sends neither)."""
    lmt, aux = _price(o.limit_price), _price(o.aux_price)
    head = [
        "101", *_contract(state, o.symbol), o.symbol, o.symbol,
        o.action, _num(o.quantity), o.order_type, lmt, aux, o.tif, o.oca_group, o.account, "O",
        "0",
        o.order_ref, str(o.perm_id), "0", "0", "0", "", "", "", "",
        "",  # faProfile: only below server version 177
    ]  # fmt: skip
    tail = [
        *[""] * 21, "", "",  # modelCode .. volatilityType, deltaNeutralOrderType, auxPrice
        "0", "", "", "", "",  # continuousUpdate .. comboLegsDescrip
        "0", "0", "0",  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        "", "", "0", "0",  # clearingAccount, clearingIntent, notHeld, dncPresent
        "",  # algoStrategy
        "0", o.status, "0", "0",  # solicited, status, randomizeSize, randomizePrice
        "0",  # conditions
        "", "", "", "", "", "", _num(o.filled), "", "", "", "", "", "",  # .. parentPermId
        now_text(), o.status,  # completedTime, completedStatus
        "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf (>= 170)
    ]  # fmt: skip
    return head + tail


def msg_completed_orders_end() -> Fields:
    return ["102"]


def msg_contract_details(state: TWSState, req_id: int, symbol: str) -> Fields:
    return [
        "10", str(req_id), symbol, "STK", "", "0", "", "SMART", "USD", symbol, "NMS", symbol,
        str(state.con_id(symbol)), "0.01",  # .. conId, minTick (no version field from 164)
        "", "ACTIVETIM,LMT,MKT", "SMART,NASDAQ,NYSE", "1", "0", f"{symbol} INC", "NASDAQ", "",
        "", "", "", "US/Eastern", "", "", "", "",  # multiplier .. evMultiplier
        "0",  # secIdList
        "1", "", "", "26", "", "COMMON",  # aggGroup .. stockType
        "1", "1", "100",  # minSize, sizeIncrement, suggestedSizeIncrement (from 164)
    ]  # fmt: skip


def msg_contract_details_end(req_id: int) -> Fields:
    return ["52", "1", str(req_id)]
