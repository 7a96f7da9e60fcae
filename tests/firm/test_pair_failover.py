"""Active and standby on real processes and the local PostgreSQL: the account's session lock
decides who trades; kill -9 of the active, or its session terminated while it lives, hands the
account to the standby within takeover_s without doubling an order or losing a decision."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import signal
from tests.e2e.process import GatewayProcess
from tests.firm.conftest import STRATEGY, status
from tests.firm.pair import member, readyz, sim_account, start_standby, wait_ready

pytestmark = pytest.mark.timeout(240)

TAKEOVER_S = 2.0


class Stream:
    """A client streaming signals at whichever member answers, keeping every decision it got
    (a refused connection or a 503 is tried again with the same signal_id: a retry, as a
    client does)."""

    def __init__(self, members: list[GatewayProcess]) -> None:
        self.members = members
        self.decisions: dict[str, str] = {}  # signal_id -> the exact JSON received
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, client: httpx.Client, sid: str) -> None:
        while not self.stop.is_set():
            for gw in self.members:
                try:
                    answer = client.post(f"{gw.url}/v1/signals", json=signal(sid, quantity=1))
                except httpx.HTTPError:
                    continue
                if answer.status_code == 200:
                    self.decisions[sid] = answer.text
                    return
            time.sleep(0.02)

    def _run(self) -> None:
        with httpx.Client(headers=STRATEGY, timeout=5) as client:
            n = 0
            while not self.stop.is_set():
                self._send(client, f"s-{n}")
                n += 1

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def replay(gw: GatewayProcess, decisions: dict[str, str]) -> None:
    """Every decision a client received is still the decision: a replay answers the same JSON."""
    with httpx.Client(headers=STRATEGY, timeout=10) as client:
        for sid, text in decisions.items():
            again = client.post(f"{gw.url}/v1/signals", json=signal(sid, quantity=1))
            assert again.status_code == 200, again.text
            assert json.loads(again.text) == json.loads(text), sid


def terminate_session(dsn: str, gateway_id: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"gateway:{gateway_id}",),
        ).fetchall()
    return len(rows)


def check_account(sim_file: Path, decisions: dict[str, str]) -> None:
    """No client_order_id reached the broker twice, every order the broker took is an accepted
    decision a client holds, and the position is what those orders bought."""
    counts, positions = sim_account(sim_file)
    assert counts and max(counts.values()) == 1, counts
    accepted = [json.loads(t) for t in decisions.values()]
    accepted = [d for d in accepted if d["decision"] == "accepted"]
    assert {d["order"]["client_order_id"] for d in accepted} == set(counts)
    bought = sum(Decimal(str(d["order"]["quantity"])) for d in accepted)
    assert positions.get("AAPL", Decimal(0)) == bought


def roles(gw: GatewayProcess) -> dict[str, tuple[str, str]]:
    """``gateway firm status``: each gateway's role and state."""
    done = gw.cli("firm", "status")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["gateways"]
    return {r["gateway_id"]: (r["role"], r["state"]) for r in rows}


def test_the_standby_waits_without_the_broker_and_answers_standby(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    with member(tmp_path, firm_dsn, "a", sim) as active:
        standby = start_standby(member(tmp_path, firm_dsn, "b", sim))
        try:
            assert readyz(standby) == (503, {"status": "standby"})
            answer = httpx.post(f"{standby.url}/v1/signals", json=signal("x"), headers=STRATEGY)
            assert answer.status_code == 503 and answer.json()["code"] == "standby"
            assert httpx.post(f"{standby.url}/v1/signals", json=signal("x")).status_code == 401
            assert status(standby)["role"] == "standby"
            assert not (standby.state_dir / "sim_broker.sqlite3").exists()
            assert status(active)["state"] == "active"
            assert roles(active) == {"a": ("active", "active"), "b": ("standby", "standby")}
        finally:
            standby.kill()


@pytest.mark.parametrize("how", ["kill -9", "pg_terminate_backend"])
def test_losing_the_active_while_signals_stream_hands_over_within_takeover_s(
    tmp_path: Path, firm_dsn: str, how: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    active = member(tmp_path, firm_dsn, "a", sim, takeover_s=TAKEOVER_S).start()
    standby = start_standby(member(tmp_path, firm_dsn, "b", sim, takeover_s=TAKEOVER_S))
    try:
        with Stream([active, standby]) as stream:
            while len(stream.decisions) < 20:
                time.sleep(0.01)
            if how == "kill -9":
                active.kill()
            else:  # the process lives on, its session (and lock) gone
                assert terminate_session(firm_dsn, "a") == 1
            took = wait_ready(standby, TAKEOVER_S + 10)
            count = len(stream.decisions)
            while len(stream.decisions) < count + 20:
                time.sleep(0.01)
        print(f"takeover after {how}: {took:.2f}s")
        firm = roles(standby)
        assert firm["b"][0] == "active" and firm["a"] == ("standby", "deposed")
        done = standby.cli("firm", "status")
        rows = {r["gateway_id"]: r for r in json.loads(done.stdout)["gateways"]}
        assert rows["a"]["gross_exposure"] == 0  # the account counts once, on b's row
        assert rows["b"]["gross_exposure"] > 0
        assert took <= TAKEOVER_S + 5  # the lock within takeover_s, then recovery and the broker
        replay(standby, stream.decisions)
        check_account(sim, stream.decisions)
    finally:
        standby.kill()
        active.kill()


def test_a_partitioned_active_cannot_commit_an_intent_and_the_standby_takes_over(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    active = member(tmp_path, firm_dsn, "a", sim, takeover_s=TAKEOVER_S).start()
    standby = start_standby(member(tmp_path, firm_dsn, "b", sim, takeover_s=TAKEOVER_S))
    try:
        with httpx.Client(headers=STRATEGY, timeout=10) as client:
            first = client.post(f"{active.url}/v1/signals", json=signal("before", quantity=1))
            assert first.json()["decision"] == "accepted"
            assert terminate_session(firm_dsn, "a") == 1  # the journal's session, lock and all
            late = client.post(f"{active.url}/v1/signals", json=signal("late", quantity=1))
            assert late.status_code == 503, late.text
            took = wait_ready(standby, TAKEOVER_S + 10)
            assert active.proc is not None and active.proc.poll() is None  # alive, not trading
            deposed = status(active)
            assert deposed["state"] == "halted"
            assert deposed["halt"]["trigger"] == "journal_failure"
            assert readyz(active)[0] == 503
            again = client.post(f"{active.url}/v1/signals", json=signal("later", quantity=1))
            assert again.status_code == 503
            replay(standby, {"before": first.text})
            after = client.post(f"{standby.url}/v1/signals", json=signal("after", quantity=1))
            assert after.json()["decision"] == "accepted", after.text
        print(f"takeover after pg_terminate_backend: {took:.2f}s")
        counts, positions = sim_account(sim)
        assert sorted(counts.values()) == [1, 1]  # before and after: nothing from the deposed
        assert positions["AAPL"] == 2
    finally:
        standby.kill()
        active.kill()


def test_a_twin_gateway_id_still_refuses_as_a_would_be_standby(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    with member(tmp_path, firm_dsn, "a", sim):
        twin = member(tmp_path / "twin", firm_dsn, "a", sim)
        done = twin.serve_refused()
        assert done.returncode == 2, done.stderr
        assert "gateway_id 'a' is in use" in done.stderr
        assert "Traceback" not in done.stderr


def test_under_systemd_a_standby_is_ready_pings_the_watchdog_and_stops_cleanly(
    tmp_path: Path, firm_dsn: str
) -> None:
    """What the template unit needs to run a standby: Type=notify sees READY=1 (else systemd
    gives up after TimeoutStartSec), WatchdogSec sees pings, SIGTERM is a clean exit 0."""
    sim = tmp_path / "sim.sqlite3"
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        address = str(Path(short) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.settimeout(10)
        with member(tmp_path, firm_dsn, "a", sim):
            standby = member(tmp_path, firm_dsn, "b", sim)
            standby.env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="400000")
            start_standby(standby)
            try:
                heard = [sock.recv(4096).decode() for _ in range(3)]
                assert any("READY=1" in m and "STANDBY" in m for m in heard), heard
                assert any("WATCHDOG=1" in m for m in heard), heard
                assert standby.terminate() == 0
            finally:
                standby.kill()
                sock.close()
