"""Models assembled without a second validation equal the validated ones, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.base import BrokerOrder, OrderRequest, assemble
from gateway.models import Decision, DecisionKind, DecisionOrder, DecisionRisk, Signal
from gateway.pipeline.ids import body_hash

ORDER = {
    "client_order_id": "gw-1",
    "broker_order_id": "sim-1",
    "status": "filled",
    "symbol": "AAPL",
    "side": "buy",
    "quantity": Decimal("3"),
    "price": Decimal("200.05"),
    "notional": Decimal("600.15"),
    "quote_time": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "order_type": "market",
    "priced_conservatively": False,
}
RISK = {
    "equity": Decimal("100000.25"),
    "position_risk": Decimal("0.00012003"),
    "heat_before": Decimal("0.0123"),
    "heat_after": Decimal("0.01242003"),
}


def test_an_assembled_decision_serialises_like_a_validated_one() -> None:
    validated = Decision(
        signal_id="s-1",
        decision=DecisionKind.ACCEPTED,
        order=DecisionOrder(**ORDER),
        risk=DecisionRisk(**RISK),
    )
    order = DecisionOrder(**ORDER)
    assembled = assemble(
        Decision,
        {
            "signal_id": "s-1",
            "decision": DecisionKind.ACCEPTED,
            "reasons": [],
            "order": assemble(DecisionOrder, dict(order.__dict__)),
            "risk": assemble(DecisionRisk, RISK),
        },
    )
    assert assembled == validated
    assert assembled.model_dump_json() == validated.model_dump_json()


def test_an_assembled_request_equals_the_validated_one() -> None:
    signal = Signal.model_validate(
        {
            "signal_id": "s-1",
            "strategy": "m",
            "symbol": "AAPL",
            "side": "sell",
            "quantity": 2.5,
            "order_type": "limit",
            "limit_price": "190.1",
            "time_in_force": "gtc",
        }
    )
    fields = {
        "client_order_id": "gw-1",
        "symbol": signal.symbol,
        "side": signal.side,
        "quantity": signal.quantity,
        "order_type": signal.order_type,
        "limit_price": signal.limit_price,
        "time_in_force": signal.time_in_force,
        "stop_price": None,
    }
    assert assemble(OrderRequest, dict(fields)) == OrderRequest(**fields)


def test_assemble_needs_every_field() -> None:
    with pytest.raises(AssertionError):
        assemble(BrokerOrder, {"client_order_id": "gw-1"})


def test_the_engine_hashes_the_body_as_ids_does() -> None:
    import hashlib

    signal = Signal(signal_id="s-1", strategy="m", symbol="AAPL", side="buy", quantity=1)
    # Unset later fields are left out, as before they existed.
    body = signal.model_dump_json(exclude={"stop_price", "stop_loss_price", "take_profit_price"})
    assert hashlib.blake2b(body.encode(), digest_size=16).hexdigest() == body_hash(signal)
