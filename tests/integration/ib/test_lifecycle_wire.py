"""The fake TWS's order messages with the fields brackets and stops add (auxPrice, ocaGroup,
ocaType, parentId), read back by ib_async's real decoder: a field out of place would make the
adapter read a bracket leg wrong after a reconnect."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ib_async.decoder import Decoder

from tests.fakes import tws_wire as f
from tests.integration.ib.test_fake_wire import Recorder

STATE = f.TWSState(accounts=["DU1"])
LEG = f.FakeOrder(900002, 8, 17, "DU1", "AAPL", "SELL", 10, "STP LMT", 189.5, "GTC", "leg-1",
                  status="PreSubmitted", aux_price=190.0, parent_id=7, oca_group="oca-in",
                  oca_type=1)  # fmt: skip


def decode(fields: list[str], caplog: pytest.LogCaptureFixture) -> tuple[str, tuple[Any, ...]]:
    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="ib_async.Decoder"):
        Decoder(recorder, f.SERVER_VERSION).interpret(list(fields))  # type: ignore[arg-type]
    assert not caplog.records, caplog.text
    [call] = recorder.calls
    return call


def test_open_order_of_a_bracket_leg(caplog: pytest.LogCaptureFixture) -> None:
    name, (order_id, _, order, state) = decode(f.msg_open_order(STATE, LEG), caplog)
    assert (name, order_id, order.orderRef, state.status) == ("openOrder", 8, "leg-1",
                                                              "PreSubmitted")  # fmt: skip
    assert (order.orderType, order.lmtPrice, order.auxPrice) == ("STP LMT", 189.5, 190.0)
    assert (order.parentId, order.ocaGroup, order.ocaType) == (7, "oca-in", 1)


def test_order_status_carries_the_parent_id(caplog: pytest.LogCaptureFixture) -> None:
    name, args = decode(f.msg_order_status(LEG), caplog)
    assert name == "orderStatus" and args[1] == "PreSubmitted" and args[6] == 7  # parentId


def test_completed_order_of_a_stop(caplog: pytest.LogCaptureFixture) -> None:
    done = f.FakeOrder(900003, 9, 17, "DU1", "AAPL", "SELL", 10, "STP", None, "GTC", "stp-1",
                       status="Filled", filled=10, aux_price=190.0)  # fmt: skip
    name, (_, order, _) = decode(f.msg_completed_order(STATE, done), caplog)
    assert (name, order.orderType, order.auxPrice, order.orderRef) == (
        "completedOrder", "STP", 190.0, "stp-1")  # fmt: skip
