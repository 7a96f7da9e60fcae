"""``brokers.ib.brackets.check_bracket``: the shapes and prices a bracket may have."""

from __future__ import annotations

import pytest

from brokers.base import OrderRequest
from brokers.errors import OrderRejected
from brokers.ib.brackets import check_bracket, oca_group


def req(cid: str, side: str, kind: str = "limit", qty: int = 5, symbol: str = "AAPL",
        **prices: float) -> OrderRequest:  # fmt: skip
    return OrderRequest(client_order_id=cid, symbol=symbol, side=side, quantity=qty,
                        order_type=kind, **prices)  # fmt: skip


def test_a_sell_bracket_has_its_stop_above_and_target_below() -> None:
    entry = req("in", "sell", limit_price=100.0)
    check_bracket(entry, req("sl", "buy", "stop", stop_price=105.0),
                  req("tp", "buy", limit_price=95.0))  # fmt: skip
    with pytest.raises(OrderRejected, match=r"stop_loss\.stop_price: 99") as wrong:
        check_bracket(entry, req("sl", "buy", "stop", stop_price=99.0), None)
    assert wrong.value.code == "protective_price_invalid"
    with pytest.raises(OrderRejected, match="entry price"):
        check_bracket(entry, None, req("tp", "buy", limit_price=101.0))


def test_a_market_entry_checks_stop_against_target_only() -> None:
    entry = req("in", "buy", "market")
    check_bracket(entry, req("sl", "sell", "stop_limit", stop_price=90.0, limit_price=89.0),
                  req("tp", "sell", limit_price=110.0))  # fmt: skip
    with pytest.raises(OrderRejected, match=r"stop_loss\.stop_price"):
        check_bracket(entry, req("sl", "sell", "stop", stop_price=120.0),
                      req("tp", "sell", limit_price=110.0))  # fmt: skip


@pytest.mark.parametrize(
    ("stop_loss", "take_profit", "field"),
    [
        (req("sl", "sell", "stop", symbol="MSFT", stop_price=90.0), None, "stop_loss.symbol"),
        (None, req("in", "sell", limit_price=110.0), "take_profit.client_order_id"),
        (
            req("x", "sell", "stop", stop_price=90.0),
            req("x", "sell", limit_price=110.0),
            "take_profit.client_order_id",
        ),
    ],
)
def test_shapes_are_refused_naming_the_field(
    stop_loss: OrderRequest | None, take_profit: OrderRequest | None, field: str
) -> None:
    with pytest.raises(OrderRejected, match=field) as refused:
        check_bracket(req("in", "buy", limit_price=100.0), stop_loss, take_profit)
    assert refused.value.code == "bracket_invalid"


def test_the_oca_group_is_the_same_on_a_retry() -> None:
    assert oca_group("sig-1") == oca_group("sig-1") != oca_group("sig-2")
