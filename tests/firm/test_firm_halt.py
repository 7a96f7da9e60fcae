"""Firm halt and kill on real gateway processes sharing the local PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import signal
from tests.e2e.process import GatewayProcess
from tests.firm.conftest import ADMIN, STRATEGY, firm_gateway, status

pytestmark = pytest.mark.timeout(240)


def wait_for(check: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s}s: {what}")


@pytest.fixture
def three(tmp_path: Path, firm_dsn: str) -> Iterator[list[GatewayProcess]]:
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(firm_gateway(tmp_path, firm_dsn, f"gw-{n}")) for n in range(3)
        ]
        yield gateways


def resting_buy(gw: GatewayProcess, signal_id: str) -> dict[str, Any]:
    body = signal(signal_id, order_type="limit", limit_price=150, time_in_force="gtc")
    decision = httpx.post(f"{gw.url}/v1/signals", json=body, headers=STRATEGY, timeout=10).json()
    assert decision["decision"] == "accepted", decision
    return decision  # type: ignore[no-any-return]


def open_orders(gw: GatewayProcess) -> list[dict[str, Any]]:
    return httpx.get(f"{gw.url}/v1/orders", headers=STRATEGY, timeout=10).json()  # type: ignore[no-any-return]


def test_firm_halt_and_kill_reach_every_gateway(three: list[GatewayProcess]) -> None:
    first = three[0]
    for n, gw in enumerate(three):
        resting_buy(gw, f"rest-{n}")
        assert len(open_orders(gw)) == 1

    done = first.cli("firm", "halt", "risk", "desk", "drill")
    assert done.returncode == 0, done.stderr
    for gw in three:
        wait_for(lambda gw=gw: status(gw)["state"] == "halted", what="every gateway HALTED")
        halt = status(gw)["halt"]
        assert halt["trigger"] == "firm_halt"
        assert "risk desk drill" in halt["reason"]
        assert len(open_orders(gw)) == 1  # a halt leaves orders resting; a kill cancels them
    blocked = httpx.post(f"{three[1].url}/v1/signals", json=signal("after"), headers=STRATEGY)
    assert blocked.json()["decision"] == "blocked"

    # The firm halt outranks a gateway's own resume.
    refused = httpx.post(f"{three[2].url}/v1/resume", json={}, headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["code"] == "firm_halted"

    done = first.cli("firm", "kill", "flatten", "the", "book")
    assert done.returncode == 0, done.stderr
    for gw in three:
        wait_for(lambda gw=gw: open_orders(gw) == [], what="resting orders cancelled")
        wait_for(lambda gw=gw: status(gw)["halt"]["kill_switch"], what="the kill switch ran")

    done = first.cli("firm", "resume")
    assert done.returncode == 0, done.stderr
    for gw in three:
        wait_for(
            lambda gw=gw: (
                httpx.post(f"{gw.url}/v1/resume", json={}, headers=ADMIN).status_code == 200
            ),
            what="a local resume works once the firm halt is lifted",
        )
        assert status(gw)["state"] == "active"


def test_a_gateway_that_was_down_starts_halted_and_runs_the_kill_it_missed(
    tmp_path: Path, firm_dsn: str
) -> None:
    gw = firm_gateway(tmp_path, firm_dsn, "late")
    with gw:
        resting_buy(gw, "rest-late")
        assert gw.terminate() == 0
    with firm_gateway(tmp_path, firm_dsn, "other") as other:
        done = other.cli("firm", "kill", "while", "late", "was", "down")
        assert done.returncode == 0, done.stderr
    with gw:
        now = status(gw)
        assert now["state"] == "halted"
        assert now["halt"]["trigger"] == "firm_halt"
        wait_for(lambda: open_orders(gw) == [], what="the missed firm kill cancels at start")
        # Restarted again: the kill already ran, the halt still holds.
        assert gw.terminate() == 0
    with gw:
        assert status(gw)["halt"]["trigger"] == "firm_halt"


def test_scope_firm_from_one_gateway_halts_the_others(three: list[GatewayProcess]) -> None:
    answer = httpx.post(
        f"{three[0].url}/v1/halt",
        json={"reason": "from the api", "scope": "firm"},
        headers=STRATEGY,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["halt"]["trigger"] == "firm_halt"
    for gw in three:
        wait_for(lambda gw=gw: status(gw)["state"] == "halted", what="all halted")
    resting = httpx.post(
        f"{three[1].url}/v1/kill",
        json={"reason": "kill from the api", "scope": "firm"},
        headers=STRATEGY,
    )
    assert resting.status_code == 200, resting.text
    assert resting.json()["status"]["halt"]["kill_switch"] is True
    for gw in three:
        wait_for(lambda gw=gw: status(gw)["halt"]["kill_switch"], what="every kill switch ran")
    listed = three[2].cli("firm", "status")
    assert listed.returncode == 0, listed.stderr
    assert '"gw-0"' in listed.stdout and '"gw-2"' in listed.stdout
