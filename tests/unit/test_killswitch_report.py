"""The kill switch, against a broker scripted call by call: what it cancels, retries, hands on,
flattens, and what its report says about each order (the report is the operator's answer)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.base import (
    BrokerOrder,
    CancelReport,
    OrderRequest,
    OrderStatus,
    Position,
    Side,
)
from brokers.errors import BrokerError, BrokerUnavailable, OrderNotFound, OrderRejected
from gateway.safety.halt import HaltManager, HaltStateStore
from gateway.safety.halt_state import HaltTrigger
from gateway.safety.killswitch import InFlightOutcome, KillReport, KillSwitch


def order(n: int, status: OrderStatus = OrderStatus.NEW, **fields: Any) -> BrokerOrder:
    values: dict[str, Any] = {
        "client_order_id": f"gw-{n}",
        "broker_order_id": f"b-{n}",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 1,
        "status": status,
        "order_type": "limit",
        "limit_price": 190,
    }
    values.update(fields)
    return BrokerOrder(**values)


class ScriptedBroker:
    """A broker whose every answer the test sets; it records every call made to it."""

    name = "scripted"
    connected = True

    def __init__(self, *orders: BrokerOrder) -> None:
        self.orders = {o.client_order_id: o for o in orders}
        self.cancel_all_error: BrokerError | None = None
        self.cancel_all_refuses: dict[str, str] = {}  # broker id -> reason
        self.cancel_all_misses: set[str] = set()  # broker ids cancel_all does not see
        self.open_orders_error: BrokerError | None = None
        self.cancel_errors: dict[str, list[BrokerError]] = {}  # coid -> errors, one per call
        self.lookup_error: BrokerError | None = None
        self.lookup_answers: dict[str, BrokerOrder | None] = {}
        self.positions_list: list[Position] = []
        self.positions_error: BrokerError | None = None
        self.calls: list[tuple[str, str]] = []
        self.submitted: list[OrderRequest] = []
        self.halted_at_cancel_all: bool | None = None
        self.halt: HaltManager | None = None

    def _by_broker_id(self, boid: str) -> BrokerOrder:
        return next(o for o in self.orders.values() if o.broker_order_id == boid)

    async def cancel_all(self) -> CancelReport:
        self.calls.append(("cancel_all", ""))
        if self.halt is not None:
            self.halted_at_cancel_all = self.halt.is_halted
        if self.cancel_all_error is not None:
            raise self.cancel_all_error
        cancelled: list[str] = []
        failed = dict(self.cancel_all_refuses)
        for coid, o in list(self.orders.items()):
            boid = o.broker_order_id
            if not o.is_open or boid in failed or boid in self.cancel_all_misses:
                continue
            self.orders[coid] = o.model_copy(update={"status": OrderStatus.CANCELED})
            cancelled.append(boid)
        return CancelReport(cancelled=cancelled, failed=failed)

    async def open_orders(self) -> list[BrokerOrder]:
        self.calls.append(("open_orders", ""))
        if self.open_orders_error is not None:
            raise self.open_orders_error
        return [o for o in self.orders.values() if o.is_open]

    async def cancel(self, client_order_id: str) -> None:
        self.calls.append(("cancel", client_order_id))
        errors = self.cancel_errors.get(client_order_id)
        if errors:
            raise errors.pop(0)
        found = self.orders.get(client_order_id)
        if found is None:
            raise OrderNotFound(f"no order {client_order_id}")
        self.orders[client_order_id] = found.model_copy(update={"status": OrderStatus.CANCELED})

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self.calls.append(("get_order", client_order_id))
        if self.lookup_error is not None:
            raise self.lookup_error
        if client_order_id in self.lookup_answers:
            return self.lookup_answers[client_order_id]
        return self.orders.get(client_order_id)

    async def positions(self) -> list[Position]:
        self.calls.append(("positions", ""))
        if self.positions_error is not None:
            raise self.positions_error
        return self.positions_list

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        self.submitted.append(request)
        return order(
            0,
            OrderStatus.FILLED,
            client_order_id=request.client_order_id,
            broker_order_id=f"b-{request.client_order_id}",
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            order_type="market",
            limit_price=None,
        )

    def called(self, name: str) -> list[str]:
        return [arg for what, arg in self.calls if what == name]


@pytest.fixture
def halt(tmp_path: Path) -> HaltManager:
    return HaltManager(HaltStateStore(tmp_path / "halt_state.json"), resume_cooldown_s=300)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The back-off of the cancel retries, recorded instead of waited for."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def no_wait(delay: float, *args: Any) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    yield slept


class Switch:
    """A kill switch over a scripted broker, with the gateway's side recorded."""

    def __init__(
        self,
        halt: HaltManager,
        broker: ScriptedBroker,
        *,
        tracked: list[BrokerOrder] | None = None,
        retries: int = 1,
        flatten: bool = False,
        in_flight: Any = None,
        unknown: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.applied: list[BrokerOrder] = []
        self.handed_on: list[str] = []
        broker.halt = halt
        extra: dict[str, Any] = dict(kwargs)
        if in_flight is not None:
            extra["in_flight"] = in_flight
        self.switch = KillSwitch(
            halt=halt,
            broker=broker,  # type: ignore[arg-type]
            on_order=self.applied.append,
            open_orders=lambda: list(tracked or []),
            flatten_positions=flatten,
            cancel_retries=retries,
            unknown_orders=lambda: list(unknown or []),
            cancel_when_found=self.handed_on.append,
            **extra,
        )

    async def kill(self) -> KillReport:
        return await self.switch.kill("fat finger", by="api:strategy")

    def applied_states(self) -> list[tuple[str, str]]:
        return [(o.client_order_id, o.status.value) for o in self.applied]


# --- the halt --------------------------------------------------------------------------------


async def test_the_kill_halts_with_its_reason_and_author_before_it_cancels(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(1))
    await Switch(halt, broker).kill()
    assert broker.halted_at_cancel_all is True
    current = halt.current
    assert current is not None
    assert (current.reason, current.trigger, current.by, current.kill_switch) == (
        "fat finger",
        HaltTrigger.KILL_SWITCH,
        "api:strategy",
        True,
    )


# --- cancel_all and what it left ---------------------------------------------------------------


async def test_what_cancel_all_cancelled_is_reported_and_leaves_the_open_list(
    halt: HaltManager,
) -> None:
    mine = [order(1), order(2)]
    broker = ScriptedBroker(*mine)
    switch = Switch(halt, broker, tracked=mine)
    report = await switch.kill()
    assert report.cancelled == ["b-1", "b-2"]
    assert report.failed == {}
    assert switch.applied_states() == [("gw-1", "canceled"), ("gw-2", "canceled")]
    assert broker.called("cancel") == []


async def test_an_order_cancel_all_cancelled_that_the_gateway_never_tracked_is_counted(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(1))
    broker.open_orders_error = BrokerUnavailable("listing down")
    switch = Switch(halt, broker, tracked=[])
    report = await switch.kill()
    assert report.cancelled == ["b-1"]
    assert switch.applied == []  # nothing of ours to move to canceled


async def test_a_failed_cancel_all_falls_back_to_one_cancel_per_order(halt: HaltManager) -> None:
    mine = [order(1), order(2)]
    broker = ScriptedBroker(*mine)
    broker.cancel_all_error = BrokerUnavailable("cancel_all down")
    switch = Switch(halt, broker, tracked=mine, retries=1)
    report = await switch.kill()
    assert broker.called("cancel") == ["gw-1", "gw-2"]
    assert report.cancelled == ["b-1", "b-2"]
    assert report.failed == {}
    assert switch.applied_states() == [("gw-1", "canceled"), ("gw-2", "canceled")]


async def test_without_retries_a_failed_cancel_all_reports_each_order_with_its_error(
    halt: HaltManager,
) -> None:
    mine = [order(1), order(2)]
    broker = ScriptedBroker(*mine)
    broker.cancel_all_error = BrokerUnavailable("cancel_all down")
    report = await Switch(halt, broker, tracked=mine, retries=0).kill()
    assert report.cancelled == []
    assert report.failed == {"b-1": "cancel_all down", "b-2": "cancel_all down"}
    assert broker.called("cancel") == []


async def test_an_order_placed_by_hand_outside_the_gateway_is_cancelled_too(
    halt: HaltManager,
) -> None:
    by_hand = order(7, client_order_id="manual-7")
    broker = ScriptedBroker(order(1), by_hand)
    broker.cancel_all_misses = {"b-7"}  # it arrived after cancel_all looked
    switch = Switch(halt, broker, tracked=[order(1)], retries=1)
    report = await switch.kill()
    assert broker.called("cancel") == ["manual-7"]
    assert sorted(report.cancelled) == ["b-1", "b-7"]
    assert report.failed == {}
    assert ("manual-7", "canceled") in switch.applied_states()


async def test_an_order_still_listed_after_cancel_all_without_retries_is_a_failure(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(1), order(7))
    broker.cancel_all_misses = {"b-7"}
    report = await Switch(halt, broker, tracked=[], retries=0).kill()
    assert report.cancelled == ["b-1"]
    assert list(report.failed) == ["b-7"]
    assert "still open" in report.failed["b-7"]  # the operator is told why, never null


async def test_a_cancelled_order_the_broker_still_lists_is_not_a_failure(
    halt: HaltManager,
) -> None:
    """The broker's list may lag its cancel_all: an order it said it cancelled is cancelled."""

    class LaggingList(ScriptedBroker):
        async def open_orders(self) -> list[BrokerOrder]:
            return [order(1)]

    broker = LaggingList(order(1))
    report = await Switch(halt, broker, tracked=[], retries=0).kill()
    assert report.cancelled == ["b-1"]
    assert report.failed == {}


async def test_a_broker_that_cannot_list_its_orders_still_has_cancel_all_reported(
    halt: HaltManager, caplog: pytest.LogCaptureFixture
) -> None:
    broker = ScriptedBroker(order(1), order(2))
    broker.cancel_all_refuses = {"b-2": "too late"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    with caplog.at_level(logging.ERROR, logger="gateway.safety.killswitch"):
        report = await Switch(halt, broker, tracked=[], retries=0).kill()
    assert report.cancelled == ["b-1"]
    assert report.failed == {"b-2": "too late"}
    assert "could not list open orders: listing down" in caplog.text


# --- retrying the orders that stand ----------------------------------------------------------


async def test_a_refused_cancel_is_retried_with_a_growing_back_off(
    halt: HaltManager, sleeps: list[float]
) -> None:
    broker = ScriptedBroker(order(1))
    broker.cancel_all_refuses = {"b-1": "busy"}
    broker.cancel_errors = {"gw-1": [BrokerUnavailable("busy"), BrokerUnavailable("busy")]}
    broker.lookup_answers = {"gw-1": order(1)}  # still open after each refusal
    report = await Switch(halt, broker, tracked=[order(1)], retries=3).kill()
    assert broker.called("cancel") == ["gw-1", "gw-1", "gw-1"]
    assert sleeps == [0.0, 0.05, 0.1]
    assert report.cancelled == ["b-1"]
    assert report.failed == {}


async def test_an_order_that_still_stands_after_every_retry_is_reported_with_the_error(
    halt: HaltManager, sleeps: list[float]
) -> None:
    broker = ScriptedBroker(order(1))
    broker.cancel_all_refuses = {"b-1": "busy"}
    broker.cancel_errors = {"gw-1": [BrokerUnavailable(f"refused {n}") for n in range(5)]}
    switch = Switch(halt, broker, tracked=[order(1)], retries=2)
    report = await switch.kill()
    assert broker.called("cancel") == ["gw-1", "gw-1"]
    assert report.cancelled == []
    assert report.failed == {"b-1": "refused 1"}
    assert switch.applied == []


async def test_no_retry_and_no_back_off_once_nothing_stands(
    halt: HaltManager, sleeps: list[float]
) -> None:
    broker = ScriptedBroker(order(1))
    report = await Switch(halt, broker, tracked=[order(1)], retries=3).kill()
    assert sleeps == []
    assert broker.called("cancel") == []
    assert report.cancelled == ["b-1"]


async def test_a_refused_cancel_of_an_order_already_cancelled_counts_as_cancelled(
    halt: HaltManager,
) -> None:
    """An earlier cancel whose answer was lost: the order is cancelled, not failed."""
    broker = ScriptedBroker(order(1))
    broker.cancel_all_refuses = {"b-1": "timeout"}
    broker.cancel_errors = {"gw-1": [OrderRejected("not cancellable")]}
    broker.lookup_answers = {"gw-1": order(1, OrderStatus.CANCELED)}
    switch = Switch(halt, broker, tracked=[order(1)], retries=1)
    report = await switch.kill()
    assert report.cancelled == ["b-1"]
    assert report.failed == {}
    assert switch.applied_states() == [("gw-1", "canceled")]


async def test_a_refused_cancel_of_an_order_that_filled_meanwhile_is_applied_as_filled(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(1))
    broker.cancel_all_refuses = {"b-1": "timeout"}
    broker.cancel_errors = {"gw-1": [OrderRejected("already filled")]}
    filled = order(1, OrderStatus.FILLED, filled_quantity=1, avg_fill_price=190)
    broker.lookup_answers = {"gw-1": filled}
    switch = Switch(halt, broker, tracked=[order(1)], retries=1)
    report = await switch.kill()
    assert report.cancelled == []
    assert report.failed == {}
    assert switch.applied == [filled]


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param("open", id="still-open"),
        pytest.param("none", id="not-found"),
        pytest.param("error", id="look-up-fails"),
    ],
)
async def test_a_refused_cancel_of_an_order_not_known_to_have_ended_is_a_failure(
    halt: HaltManager, lookup: str
) -> None:
    broker = ScriptedBroker(order(1))
    broker.cancel_all_refuses = {"b-1": "timeout"}
    broker.cancel_errors = {"gw-1": [OrderRejected("cancel refused")]}
    if lookup == "open":
        broker.lookup_answers = {"gw-1": order(1, OrderStatus.PARTIALLY_FILLED)}
    elif lookup == "none":
        broker.lookup_answers = {"gw-1": None}
    else:
        broker.lookup_error = BrokerUnavailable("look-up down")
    switch = Switch(halt, broker, tracked=[order(1)], retries=1)
    report = await switch.kill()
    assert broker.called("get_order") == ["gw-1"]
    assert report.failed == {"b-1": "cancel refused"}
    assert report.cancelled == []
    assert switch.applied == []


async def test_a_failure_the_gateway_cannot_place_does_not_stop_the_retries_of_the_others(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(2))
    broker.cancel_all_refuses = {"b-ghost": "unknown order", "b-2": "busy"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    report = await Switch(halt, broker, tracked=[order(2)], retries=1).kill()
    assert broker.called("cancel") == ["gw-2"]
    assert report.cancelled == ["b-2"]
    assert report.failed == {"b-ghost": "unknown order"}


# --- submits on the wire -------------------------------------------------------------------


class InFlight:
    """What the sender's registry answers; records the wait it was given."""

    def __init__(self, done: list[InFlightOutcome], waiting: list[str]) -> None:
        self.done = done
        self.waiting = waiting
        self.waits: list[float] = []

    async def __call__(self, timeout_s: float) -> tuple[list[InFlightOutcome], list[str]]:
        self.waits.append(timeout_s)
        return self.done, self.waiting


async def test_the_kill_waits_ten_seconds_for_submits_on_the_wire_by_default(
    halt: HaltManager,
) -> None:
    in_flight = InFlight([], ["gw-slow"])
    switch = Switch(halt, ScriptedBroker(), in_flight=in_flight)
    report = await switch.kill()
    assert in_flight.waits == [10.0]
    assert list(report.failed) == ["gw-slow"]
    assert "10s" in report.failed["gw-slow"]
    assert switch.handed_on == ["gw-slow"]


async def test_the_wait_for_submits_on_the_wire_is_the_one_configured(halt: HaltManager) -> None:
    in_flight = InFlight([], ["gw-slow"])
    report = await Switch(halt, ScriptedBroker(), in_flight=in_flight, in_flight_wait_s=2.5).kill()
    assert in_flight.waits == [2.5]
    assert "2.5s" in report.failed["gw-slow"]


async def test_what_became_of_each_submit_on_the_wire_is_reported(halt: HaltManager) -> None:
    done = [
        InFlightOutcome("gw-1", order(1, OrderStatus.CANCELED), cancelled=True),
        InFlightOutcome("gw-2", order(2), cancel_error="cancel failed: busy"),
        InFlightOutcome("gw-3", order(3, OrderStatus.FILLED), cancel_error="cancel failed: x"),
        InFlightOutcome("gw-4", order(4, OrderStatus.FILLED)),
    ]
    switch = Switch(halt, ScriptedBroker(), in_flight=InFlight(done, []))
    report = await switch.kill()
    assert report.cancelled == ["b-1"]
    assert report.failed == {"b-2": "cancel failed: busy"}
    assert switch.handed_on == []


async def test_a_submit_with_no_answer_that_an_event_placed_is_cancelled(
    halt: HaltManager,
) -> None:
    """Its answer was lost, but the broker's own event put it in the book: it rests."""
    placed = order(5)
    broker = ScriptedBroker(placed)
    broker.cancel_all_misses = {"b-5"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    done = [InFlightOutcome("gw-5", None), InFlightOutcome("gw-6", None)]
    switch = Switch(halt, broker, tracked=[placed], retries=0, in_flight=InFlight(done, []))
    report = await switch.kill()
    assert broker.called("cancel") == ["gw-5"]
    assert broker.called("get_order") == []  # gw-6 was never placed: nothing to look up
    assert report.cancelled == ["b-5"]
    assert report.failed == {}
    assert switch.applied_states() == [("gw-5", "canceled")]


# --- orders of unknown fate ------------------------------------------------------------------


async def test_an_order_of_unknown_fate_found_resting_is_cancelled_by_its_id(
    halt: HaltManager,
) -> None:
    resting = order(8)
    broker = ScriptedBroker(resting)
    broker.cancel_all_misses = {"b-8"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    switch = Switch(halt, broker, retries=0, unknown=["gw-8"])
    report = await switch.kill()
    assert broker.called("get_order") == ["gw-8"]
    assert broker.called("cancel") == ["gw-8"]
    assert report.cancelled == ["b-8"]
    assert report.failed == {}
    assert switch.applied_states() == [("gw-8", "canceled")]


async def test_a_tracked_order_of_unknown_fate_is_cancelled_without_a_look_up(
    halt: HaltManager,
) -> None:
    """It failed in the cancel_all pass; cancelled now, it leaves the failed list."""
    resting = order(8)
    broker = ScriptedBroker(resting)
    broker.cancel_all_refuses = {"b-8": "busy"}
    done = [InFlightOutcome("gw-8", None)]
    switch = Switch(
        halt, broker, tracked=[resting], retries=0, unknown=["gw-8"], in_flight=InFlight(done, [])
    )
    report = await switch.kill()
    assert broker.called("get_order") == []
    assert broker.called("cancel") == ["gw-8"]  # once, though both lists name it
    assert report.cancelled == ["b-8"]
    assert report.failed == {}


async def test_an_order_cancelled_twice_over_is_counted_once(halt: HaltManager) -> None:
    resting = order(8)
    broker = ScriptedBroker(resting)
    done = [InFlightOutcome("gw-8", order(8, OrderStatus.CANCELED), cancelled=True)]
    report = await Switch(halt, broker, tracked=[resting], in_flight=InFlight(done, [])).kill()
    assert report.cancelled == ["b-8"]


@pytest.mark.parametrize(
    "found",
    [None, order(8, OrderStatus.FILLED, filled_quantity=1, avg_fill_price=190)],
    ids=["never-placed", "already-final"],
)
async def test_an_order_of_unknown_fate_never_placed_or_final_is_left_alone(
    halt: HaltManager, found: BrokerOrder | None
) -> None:
    broker = ScriptedBroker()
    broker.lookup_answers = {"gw-8": found}
    switch = Switch(halt, broker, unknown=["gw-8"])
    report = await switch.kill()
    assert broker.called("cancel") == []
    assert (report.cancelled, report.failed, switch.applied) == ([], {}, [])


async def test_an_order_of_unknown_fate_that_cannot_be_looked_up_is_handed_on(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker()
    broker.lookup_error = BrokerUnavailable("look-up down")
    switch = Switch(halt, broker, unknown=["gw-8", "gw-9"])
    report = await switch.kill()
    assert list(report.failed) == ["gw-8", "gw-9"]
    assert "look-up down" in report.failed["gw-8"]
    assert switch.handed_on == ["gw-8", "gw-9"]


async def test_an_order_of_unknown_fate_whose_cancel_fails_is_reported_by_broker_id(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(8), order(9))
    broker.cancel_all_misses = {"b-8", "b-9"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    broker.cancel_errors = {"gw-8": [OrderRejected("cancel refused")]}
    switch = Switch(halt, broker, retries=0, unknown=["gw-8", "gw-9"])
    report = await switch.kill()
    assert report.failed == {"b-8": "cancel refused"}
    assert report.cancelled == ["b-9"]
    assert switch.applied_states() == [("gw-9", "canceled")]


# --- flattening ------------------------------------------------------------------------------


def positions() -> list[Position]:
    return [
        Position(symbol="SPY", qty=0, avg_price=590),  # nothing to close; the next still are
        Position(symbol="AAPL", qty=1, avg_price=200),  # one share long: a sell of one
        Position(symbol="MSFT", qty=-5, avg_price=400),
    ]


async def test_flattening_closes_each_position_with_an_opposite_market_order(
    halt: HaltManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.safety.killswitch.time.time", lambda: 1_700_000_000.1234)
    broker = ScriptedBroker()
    broker.positions_list = positions()
    sent: list[OrderRequest] = []

    async def through_the_journal(request: OrderRequest) -> BrokerOrder:
        sent.append(request)
        return await broker.submit(request)

    switch = Switch(halt, broker, flatten=True, submit_flatten=through_the_journal)
    report = await switch.kill()
    assert [
        (r.client_order_id, r.symbol, r.side, r.quantity, r.order_type.value) for r in sent
    ] == [
        ("kill-AAPL-1700000000123", "AAPL", Side.SELL, Decimal(1), "market"),
        ("kill-MSFT-1700000000123", "MSFT", Side.BUY, Decimal(5), "market"),
    ]
    assert report.flattened == ["AAPL", "MSFT"]
    assert report.flatten_failed == {}
    assert [o.client_order_id for o in switch.applied] == [r.client_order_id for r in sent]


async def test_without_a_flatten_path_the_broker_itself_closes_positions(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker()
    broker.positions_list = positions()
    report = await Switch(halt, broker, flatten=True).kill()
    assert [r.symbol for r in broker.submitted] == ["AAPL", "MSFT"]
    assert report.flattened == ["AAPL", "MSFT"]


async def test_positions_are_left_alone_unless_flattening_is_configured(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker()
    broker.positions_list = positions()
    report = await Switch(halt, broker, flatten=False).kill()
    assert broker.called("positions") == []
    assert broker.submitted == []
    assert report.flattened == []


async def test_a_refused_flatten_order_is_reported_and_the_others_still_go(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker()
    broker.positions_list = positions()

    async def refuse_aapl(request: OrderRequest) -> BrokerOrder:
        if request.symbol == "AAPL":
            raise OrderRejected("no shares to sell")
        return await broker.submit(request)

    report = await Switch(halt, broker, flatten=True, submit_flatten=refuse_aapl).kill()
    assert report.flatten_failed == {"AAPL": "OrderRejected: no shares to sell"}
    assert report.flattened == ["MSFT"]


async def test_positions_that_cannot_be_read_are_reported_as_not_flattened(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker()
    broker.positions_error = BrokerUnavailable("positions down")
    report = await Switch(halt, broker, flatten=True).kill()
    assert report.flatten_failed == {"*": "positions down"}
    assert report.flattened == []


# --- timing and the operator's log ------------------------------------------------------------


async def test_the_report_times_the_halt_and_the_whole_kill_in_milliseconds(
    halt: HaltManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter([100.0, 100.002, 100.5])
    monkeypatch.setattr("gateway.safety.killswitch.time.perf_counter", lambda: next(ticks))
    report = await Switch(halt, ScriptedBroker(order(1))).kill()
    assert report.halt_ms == pytest.approx(2.0)
    assert report.elapsed_ms == pytest.approx(500.0)


async def test_the_kill_is_logged_critical_with_its_counts_reason_and_author(
    halt: HaltManager, caplog: pytest.LogCaptureFixture
) -> None:
    broker = ScriptedBroker(order(1), order(2), order(3))
    broker.cancel_all_refuses = {"b-3": "busy"}
    with caplog.at_level(logging.CRITICAL, logger="gateway.safety.killswitch"):
        await Switch(halt, broker, retries=0).kill()
    [record] = [r for r in caplog.records if r.name == "gateway.safety.killswitch"]
    assert record.levelno == logging.CRITICAL
    assert record.getMessage().startswith("kill switch: 2 cancelled, 1 failed in ")
    assert (record.reason, record.by) == ("fat finger", "api:strategy")  # type: ignore[attr-defined]


async def test_one_order_that_will_not_cancel_does_not_stop_the_others_being_retried(
    halt: HaltManager,
) -> None:
    broker = ScriptedBroker(order(1), order(2))
    broker.cancel_all_refuses = {"b-1": "busy", "b-2": "busy"}
    broker.cancel_errors = {"gw-1": [OrderRejected("cancel refused")]}
    report = await Switch(halt, broker, tracked=[order(1), order(2)], retries=1).kill()
    assert broker.called("cancel") == ["gw-1", "gw-2"]
    assert report.cancelled == ["b-2"]
    assert report.failed == {"b-1": "cancel refused"}


async def test_an_order_of_unknown_fate_never_placed_does_not_stop_the_next_being_cancelled(
    halt: HaltManager,
) -> None:
    resting = order(9)
    broker = ScriptedBroker(resting)
    broker.cancel_all_misses = {"b-9"}
    broker.open_orders_error = BrokerUnavailable("listing down")
    broker.lookup_answers = {"gw-8": None}
    report = await Switch(halt, broker, retries=0, unknown=["gw-8", "gw-9"]).kill()
    assert broker.called("get_order") == ["gw-8", "gw-9"]
    assert report.cancelled == ["b-9"]
    assert report.failed == {}
