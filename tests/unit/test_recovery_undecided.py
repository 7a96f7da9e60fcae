"""Restart recovery of a signal whose intent was journaled but whose decision never was: the
broker's answer decides it, nothing is sent again, and an unknown fate stays unknown."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from brokers.base import BrokerOrder, OrderRequest
from brokers.errors import BrokerUnavailable
from gateway.models import Signal
from gateway.pipeline.recovery import resolve_undecided
from gateway.risk.book import Book
from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltStateStore
from gateway.store.journal import Journal
from tests.conftest import signal
from tests.fakes.scripted_broker import ScriptedBroker


def _body(signal_id: str, quantity: int = 3) -> str:
    return Signal(**signal(signal_id, quantity=quantity)).model_dump_json()


def _request(coid: str, **fields: object) -> OrderRequest:
    return OrderRequest(
        **{"client_order_id": coid, "symbol": "AAPL", "side": "buy", "quantity": 3, **fields}
    )


def _intent(
    journal: Journal,
    signal_id: str,
    order: OrderRequest | None,
    *,
    valued_at: str | None = "200",
    body: str | None = None,
) -> None:
    journal.record_intent(
        signal_id=signal_id,
        body_hash=f"hash-{signal_id}",
        body=_body(signal_id) if body is None else body,
        strategy="momentum",
        symbol="AAPL",
        order=order,
        valued_at=valued_at,
    )


class Recovery:
    def __init__(self, tmp_path: Path, broker: ScriptedBroker) -> None:
        self.journal = Journal(tmp_path / "journal.sqlite3")
        self.broker = broker
        self.book = Book()
        self.halt = HaltManager(HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=0)
        self.unknown: list[OrderRequest] = []

    async def run(self) -> dict[str, tuple[str, str]]:
        return await resolve_undecided(
            self.journal,
            self.broker,  # type: ignore[arg-type]
            self.book,
            halt=self.halt,
            on_unknown=self.unknown.append,
        )

    def decision(self, signal_id: str) -> dict[str, object]:
        stored = self.journal.signal(signal_id)
        assert stored is not None and stored.decision is not None
        return dict(json.loads(stored.decision))

    def status(self, coid: str) -> str:
        (order,) = [o for o in self.journal.orders() if o.client_order_id == coid]
        return order.status


@pytest.fixture
def broker() -> ScriptedBroker:
    return ScriptedBroker()


@pytest.fixture
def recovery(tmp_path: Path, broker: ScriptedBroker) -> Recovery:
    return Recovery(tmp_path, broker)


async def test_a_failed_look_up_leaves_the_fate_unknown_and_the_exposure_counted(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    recovery.broker = broker = ScriptedBroker({"get_order": [BrokerUnavailable("timed out")]})
    _intent(recovery.journal, "s-1", _request("gw-1"), valued_at="201.5")
    decided = await recovery.run()

    decision = recovery.decision("s-1")
    assert decision["decision"] == "accepted"
    reasons = decision["reasons"]
    assert isinstance(reasons, list)
    assert [r["code"] for r in reasons] == ["broker_answer_unknown"]
    assert "timed out" in reasons[0]["message"]
    order = decision["order"]
    assert isinstance(order, dict)
    assert order["status"] == "pending_submit" and order["client_order_id"] == "gw-1"
    assert Decimal(str(order["price"])) == Decimal("201.5")
    assert Decimal(str(order["notional"])) == Decimal("604.5")
    # Still counted against the limits at the price it was valued at, and handed over to be
    # settled later; never sent again.
    res = recovery.book.reservations["gw-1"]
    assert (res.symbol, res.side, res.quantity, res.price) == (
        "AAPL",
        "buy",
        Decimal(3),
        Decimal("201.5"),
    )
    assert [r.client_order_id for r in recovery.unknown] == ["gw-1"]
    assert broker.count("submit") == 0
    assert recovery.status("gw-1") == "pending_submit"
    assert decided["s-1"][0] == "hash-s-1"
    assert json.loads(decided["s-1"][1]) == decision


async def test_an_unknown_limit_order_without_a_valuation_is_counted_at_its_limit(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    recovery.broker = ScriptedBroker({"get_order": [BrokerUnavailable("down")]})
    limit = _request("gw-1", order_type="limit", limit_price="150.25")
    _intent(recovery.journal, "s-1", limit, valued_at=None)
    await recovery.run()
    assert recovery.book.reservations["gw-1"].price == Decimal("150.25")
    order = recovery.decision("s-1")["order"]
    assert isinstance(order, dict) and Decimal(str(order["price"])) == Decimal("150.25")


async def test_an_unknown_order_with_no_price_at_all_is_counted_at_zero(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    recovery.broker = ScriptedBroker({"get_order": [BrokerUnavailable("down")]})
    _intent(recovery.journal, "s-1", _request("gw-1"), valued_at=None)
    await recovery.run()
    assert recovery.book.reservations["gw-1"].price == Decimal(0)
    assert recovery.decision("s-1")["decision"] == "accepted"


async def test_an_order_the_broker_does_not_have_is_rejected_and_never_placed(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    _intent(recovery.journal, "s-1", _request("gw-1"))
    decided = await recovery.run()

    decision = recovery.decision("s-1")
    assert decision["decision"] == "rejected"
    reasons = decision["reasons"]
    assert isinstance(reasons, list)
    assert [r["code"] for r in reasons] == ["broker_unavailable"]
    assert "gw-1" in reasons[0]["message"]
    assert recovery.status("gw-1") == "rejected"
    events = recovery.journal._db.execute(
        "SELECT status, detail FROM order_events WHERE client_order_id='gw-1'"
    ).fetchall()
    assert events == [("rejected", reasons[0]["message"])]  # the order says why
    assert recovery.book.reservations == {} and recovery.book.orders == {}
    assert recovery.unknown == [] and broker.count("submit") == 0
    assert json.loads(decided["s-1"][1]) == decision
    (event,) = recovery.journal.events("recovered_intent")
    assert (event["signal_id"], event["client_order_id"], event["outcome"]) == (
        "s-1",
        "gw-1",
        "rejected",
    )


async def test_an_order_the_broker_has_is_accepted_at_the_brokers_state(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    _intent(recovery.journal, "s-1", _request("gw-1", order_type="limit", limit_price="150"))
    broker.orders["gw-1"] = BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=3,
        filled_quantity=1,
        status="partially_filled",
        order_type="limit",
        limit_price="150",
        avg_fill_price="149.5",
    )
    decided = await recovery.run()

    decision = recovery.decision("s-1")
    assert decision["decision"] == "accepted" and decision["reasons"] == []
    order = decision["order"]
    assert isinstance(order, dict)
    assert (order["status"], order["broker_order_id"]) == ("partially_filled", "b-1")
    assert Decimal(str(order["price"])) == Decimal("149.5")  # the fills' price first
    tracked = recovery.book.orders["gw-1"]
    assert tracked.price == Decimal("149.5")
    assert recovery.book.reservations == {}
    assert recovery.status("gw-1") == "partially_filled"  # the broker's state is journaled
    assert recovery.unknown == [] and broker.count("submit") == 0
    (event,) = recovery.journal.events("recovered_intent")
    assert (event["signal_id"], event["client_order_id"], event["outcome"]) == (
        "s-1",
        "gw-1",
        "accepted",
    )
    assert decided == {"s-1": ("hash-s-1", json.dumps(decision, separators=(",", ":")))}


@pytest.mark.parametrize(
    ("limit", "valued_at", "expected"),
    [("150", "200", "150"), (None, "200", "200"), (None, None, "0")],
)
async def test_an_unfilled_order_at_the_broker_is_tracked_at_its_limit_then_its_valuation(
    recovery: Recovery,
    broker: ScriptedBroker,
    limit: str | None,
    valued_at: str | None,
    expected: str,
) -> None:
    kind = "limit" if limit else "market"
    request = _request("gw-1", order_type=kind, limit_price=limit)
    _intent(recovery.journal, "s-1", request, valued_at=valued_at)
    broker.orders["gw-1"] = BrokerOrder(
        client_order_id="gw-1",
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=3,
        status="new",
        order_type=kind,
        limit_price=limit,
    )
    await recovery.run()
    assert recovery.book.orders["gw-1"].price == Decimal(expected)
    order = recovery.decision("s-1")["order"]
    assert isinstance(order, dict) and Decimal(str(order["price"])) == Decimal(expected)


async def test_a_signal_refused_without_an_order_row_is_rejected_without_asking_the_broker(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    _intent(recovery.journal, "s-1", None)  # a refusal cut short: no order was ever written
    await recovery.run()
    decision = recovery.decision("s-1")
    assert decision["decision"] == "rejected"
    reasons = decision["reasons"]
    assert isinstance(reasons, list) and [r["code"] for r in reasons] == ["broker_unavailable"]
    assert broker.count("get_order") == 0
    (event,) = recovery.journal.events("recovered_intent")
    assert event["client_order_id"] is None and event["outcome"] == "rejected"


async def test_every_undecided_signal_is_decided_and_decided_ones_are_left_alone(
    recovery: Recovery, broker: ScriptedBroker
) -> None:
    journal = recovery.journal
    journal.record_refusal(
        signal_id="s-0",
        body_hash="h0",
        body=_body("s-0"),
        strategy="momentum",
        symbol="AAPL",
        decision_json='{"decision":"rejected"}',
        outcome="rejected",
    )
    _intent(journal, "s-1", _request("gw-1"))
    _intent(journal, "s-2", _request("gw-2"))
    decided = await recovery.run()
    assert sorted(decided) == ["s-1", "s-2"]
    assert broker.calls == ["get_order", "get_order"]
    assert journal.undecided() == []
    assert not recovery.halt.is_halted


async def test_an_unreadable_signal_body_halts_naming_the_signal_and_still_resolves_its_order(
    recovery: Recovery,
) -> None:
    sid = "s-" + "9" * 600  # a reason longer than a halt reason may be
    _intent(recovery.journal, sid, _request("gw-1"), body='{"not": "a signal"}')
    decided = await recovery.run()
    summary = recovery.halt.summary()
    assert summary is not None
    assert summary["trigger"] == "state_unreadable" and summary["by"] == "recovery"
    reason = str(summary["reason"])
    assert reason == f"journal: the body of signal {sid}"[:500]
    assert recovery.decision(sid)["decision"] == "rejected"  # the broker has no gw-1
    assert sid in decided


async def test_an_unreadable_body_is_logged_and_halts_on_one_line_naming_the_error(
    recovery: Recovery, caplog: pytest.LogCaptureFixture
) -> None:
    body = "{\n"
    with pytest.raises(ValidationError) as caught:
        Signal.model_validate_json(body)
    assert "\n" in str(caught.value)  # the error spans lines: the reason must not
    _intent(recovery.journal, "s-1", _request("gw-1"), body=body)
    await recovery.run()
    expected = (
        f"journal: the body of signal s-1 cannot be read back ({caught.value}); its order was "
        "resolved by client_order_id: check the journal before resuming"
    ).replace("\n", " ")
    summary = recovery.halt.summary()
    assert summary is not None and summary["reason"] == expected[:500]
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.pipeline.recovery" and r.levelno == logging.CRITICAL
    ]
    assert logged == [expected]


async def test_a_readable_signal_body_does_not_halt(recovery: Recovery) -> None:
    _intent(recovery.journal, "s-1", _request("gw-1"))
    await recovery.run()
    assert recovery.halt.summary() is None


async def test_each_resolved_signal_is_logged_and_its_outcome_persisted(
    recovery: Recovery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.pipeline.recovery")
    _intent(recovery.journal, "s-1", _request("gw-1"))
    await recovery.run()
    outcome = recovery.journal._db.execute(
        "SELECT outcome FROM signals WHERE signal_id='s-1'"
    ).fetchall()
    assert outcome == [("rejected",)]
    (record,) = [r for r in caplog.records if r.name == "gateway.pipeline.recovery"]
    assert record.getMessage() == "resolved an undecided signal after restart: rejected"
    assert (record.signal_id, record.client_order_id) == ("s-1", "gw-1")  # type: ignore[attr-defined]
