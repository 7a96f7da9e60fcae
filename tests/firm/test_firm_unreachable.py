"""Losing PostgreSQL: a real gateway behind a TCP proxy the test cuts. With on_disconnect: halt
it halts (firm_unreachable) after grace_s and resumes normally once it is back; a firm halt it
missed while away is found when it reconnects (the table is the truth)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import signal
from tests.firm.conftest import ADMIN, HOST, STRATEGY, firm_gateway, status
from tests.firm.proxy import TcpProxy

pytestmark = pytest.mark.timeout(180)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s}s: {what}")


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    host, port = HOST.split(":")
    with TcpProxy((host, int(port))) as tcp:
        yield tcp


def via(dsn: str, proxy: TcpProxy) -> str:
    return dsn.replace(HOST, f"127.0.0.1:{proxy.port}")


@pytest.mark.parametrize("outage", ["cut", "hang"])
def test_unreachable_for_grace_halts_and_a_resume_works_once_back(
    tmp_path: Path, firm_dsn: str, proxy: TcpProxy, outage: str
) -> None:
    with firm_gateway(tmp_path, via(firm_dsn, proxy), "a", firm={"grace_s": 1.0}) as gw:
        assert status(gw)["firm"]["connected"] is True
        getattr(proxy, outage)()
        took = wait_for(lambda: status(gw)["state"] == "halted", 10, "halted after grace_s")
        assert took >= 0.5  # not before the grace period (measured from our side, roughly)
        halt = status(gw)["halt"]
        assert halt["trigger"] == "firm_unreachable"
        refused = httpx.post(f"{gw.url}/v1/resume", json={}, headers=ADMIN)
        assert refused.status_code == 409
        assert refused.json()["code"] == "firm_unreachable"

        proxy.restore()
        if outage == "hang":
            proxy.cut()  # the held connections are dead to the gateway: let them go
            proxy.restore()
        wait_for(lambda: status(gw)["firm"]["connected"], 15, "reconnected")
        resumed = httpx.post(f"{gw.url}/v1/resume", json={}, headers=ADMIN)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["state"] == "active"


def test_a_firm_halt_missed_while_away_is_found_on_reconnect(
    tmp_path: Path, firm_dsn: str, proxy: TcpProxy
) -> None:
    firm = {"grace_s": 1.0, "on_disconnect": "continue", "max_gross_exposure": 1_000_000}
    with firm_gateway(tmp_path, via(firm_dsn, proxy), "a", firm=firm) as gw:
        proxy.cut()
        wait_for(lambda: not status(gw)["firm"]["connected"], 10, "the link sees the cut")
        time.sleep(1.5)  # past grace_s: on_disconnect: continue keeps it trading...
        assert status(gw)["state"] == "active"
        # ...but never past a limit it cannot check.
        decision = httpx.post(f"{gw.url}/v1/signals", json=signal("blind"), headers=STRATEGY)
        assert [r["code"] for r in decision.json()["reasons"]] == ["firm_exposure"]

        done = gw.cli(
            "firm", "halt", "while", "a", "was", "away", env={"GATEWAY_FIRM_DSN": firm_dsn}
        )
        assert done.returncode == 0, done.stderr
        time.sleep(0.5)
        assert status(gw)["state"] == "active"  # it cannot have heard

        proxy.restore()
        wait_for(lambda: status(gw)["state"] == "halted", 15, "the halt found on reconnect")
        assert status(gw)["halt"]["trigger"] == "firm_halt"


def test_scope_firm_without_postgres_still_halts_here(
    tmp_path: Path, firm_dsn: str, proxy: TcpProxy
) -> None:
    firm = {"grace_s": 30.0, "on_disconnect": "continue"}
    with firm_gateway(tmp_path, via(firm_dsn, proxy), "a", firm=firm) as gw:
        proxy.cut()
        answer = httpx.post(
            f"{gw.url}/v1/kill", json={"reason": "cut off", "scope": "firm"}, headers=STRATEGY
        )
        assert answer.status_code == 503
        body = answer.json()
        assert body["code"] == "firm_unreachable"
        assert "this gateway is halted" in body["message"]
        now = status(gw)
        assert now["state"] == "halted"
        assert now["halt"]["trigger"] == "firm_halt" and now["halt"]["kill_switch"] is True
