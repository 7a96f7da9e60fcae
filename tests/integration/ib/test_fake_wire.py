"""Each fake-TWS message builder, read back by ib_async's real decoder at server version 176.

A message with a field too many or too few is swallowed by the decoder (logged, no callback),
and whatever waited for it times out; so each builder is checked here on its own, by the values
the decoder hands to the wrapper.
"""

from __future__ import annotations

import logging
from datetime import UTC
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async.decoder import Decoder

from tests.fakes import tws_wire as f


class Recorder:
    """Stands in for ib_async's Wrapper: records every callback the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = SimpleNamespace(TimezoneTWS="")
        self.defaultTimezone = UTC

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


@pytest.fixture
def decode(caplog: pytest.LogCaptureFixture) -> Any:
    def run(fields: list[str]) -> tuple[str, tuple[Any, ...]]:
        recorder = Recorder()
        decoder = Decoder(recorder, f.SERVER_VERSION)  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR, logger="ib_async.Decoder"):
            decoder.interpret(list(fields))
        assert not caplog.records, caplog.text
        assert len(recorder.calls) == 1, recorder.calls
        return recorder.calls[0]

    return run


STATE = f.TWSState(accounts=["DU1"])
ORDER = f.FakeOrder(900001, 7, 17, "DU1", "AAPL", "BUY", 10, "LMT", 199.5, "DAY", "cid-1")


def test_handshake_is_version_and_time() -> None:
    version, time = f.msg_handshake()
    assert version == "176" and time.endswith("UTC")


def test_next_valid_id_and_managed_accounts_have_exactly_three_fields(decode: Any) -> None:
    # ib_async's client unpacks these two itself, before the decoder: "_, _, value = fields"
    assert len(f.msg_next_valid_id(5)) == 3
    assert len(f.msg_managed_accounts(["DU1", "DU2"])) == 3
    assert decode(f.msg_next_valid_id(5)) == ("nextValidId", (5,))
    assert decode(f.msg_managed_accounts(["DU1", "DU2"])) == ("managedAccounts", ("DU1,DU2",))


def test_error(decode: Any) -> None:
    assert decode(f.msg_error(7, 201, "Rejected")) == ("error", (7, 201, "Rejected", ""))


def test_tick_price(decode: Any) -> None:
    assert decode(f.msg_tick_price(3, 1, 199.95, 100)) == ("priceSizeTick", (3, 1, 199.95, 100.0))


def test_position(decode: Any) -> None:
    name, (account, contract, qty, cost) = decode(f.msg_position(STATE, "DU1", "AAPL", -5, 190))
    assert (name, account, contract.symbol, qty, cost) == ("position", "DU1", "AAPL", -5.0, 190.0)


def test_portfolio(decode: Any) -> None:
    name, args = decode(f.msg_portfolio(STATE, "DU1", "AAPL", 5, 190))
    assert name == "updatePortfolio" and args[0].symbol == "AAPL" and args[-1] == "DU1"


def test_open_order(decode: Any) -> None:
    name, (order_id, contract, order, state) = decode(f.msg_open_order(STATE, ORDER))
    assert name == "openOrder" and order_id == 7 and contract.symbol == "AAPL"
    assert (order.orderRef, order.clientId, order.permId) == ("cid-1", 17, 900001)
    assert (order.action, order.totalQuantity, order.lmtPrice) == ("BUY", 10.0, 199.5)
    assert state.status == "Submitted"


def test_order_status_carries_the_client_id(decode: Any) -> None:
    name, args = decode(f.msg_order_status(ORDER))
    assert name == "orderStatus"
    assert args == (7, "Submitted", 0.0, 10.0, 0.0, 900001, 0, 0.0, 17, "", 0.0)


def test_exec_details(decode: Any) -> None:
    ex = f.FakeExecution("e1", ORDER, 4, 199.5, "20261125 14:30:00 UTC", 4, 199.5)
    name, (req_id, contract, execution) = decode(f.msg_exec_details(STATE, -1, ex))
    assert name == "execDetails" and req_id == -1 and contract.symbol == "AAPL"
    assert (execution.orderId, execution.orderRef, execution.side) == (7, "cid-1", "BOT")
    assert (execution.shares, execution.price, execution.lastLiquidity) == (4.0, 199.5, 1)
    assert execution.time.tzinfo is not None


def test_completed_order(decode: Any) -> None:
    done = f.FakeOrder(900002, 8, 17, "DU1", "AAPL", "SELL", 3, "MKT", None, "DAY", "cid-2",
                       status="Filled", filled=3)  # fmt: skip
    name, (contract, order, state) = decode(f.msg_completed_order(STATE, done))
    assert name == "completedOrder" and contract.symbol == "AAPL"
    assert (order.orderRef, order.permId, order.action) == ("cid-2", 900002, "SELL")
    assert (order.filledQuantity, state.status, state.completedStatus) == (3.0, "Filled", "Filled")


def test_contract_details(decode: Any) -> None:
    name, (req_id, details) = decode(f.msg_contract_details(STATE, 4, "AAPL"))
    assert name == "contractDetails" and req_id == 4
    assert details.contract.conId == STATE.con_id("AAPL") and details.stockType == "COMMON"


@pytest.mark.parametrize(
    ("fields", "callback"),
    [
        (f.msg_position_end(), "positionEnd"),
        (f.msg_open_order_end(), "openOrderEnd"),
        (f.msg_completed_orders_end(), "completedOrdersEnd"),
        (f.msg_account_download_end("DU1"), "accountDownloadEnd"),
        (f.msg_account_update_multi_end(3), "accountUpdateMultiEnd"),
        (f.msg_exec_details_end(3), "execDetailsEnd"),
        (f.msg_contract_details_end(3), "contractDetailsEnd"),
        (f.msg_account_value("NetLiquidation", 1.5, "DU1"), "updateAccountValue"),
        (f.msg_account_update_multi(3, "DU1", "NetLiquidation", 1.5), "accountUpdateMulti"),
        (f.msg_account_time(), "updateAccountTime"),
        (f.msg_market_data_type(3, 1), "marketDataType"),
        (f.msg_commission_report("e1"), "commissionReport"),
    ],
)
def test_the_other_messages(decode: Any, fields: list[str], callback: str) -> None:
    assert decode(fields)[0] == callback
