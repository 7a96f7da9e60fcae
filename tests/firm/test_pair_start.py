"""A pair member's start on real processes: a halt the other member left in force holds after
a takeover, and a state dir whose SQLite journal would be left behind is refused."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from gateway.config import ConfigError, GatewayConfig
from gateway.http.server import serve
from tests.firm.conftest import ADMIN, status
from tests.firm.pair import ACCOUNT, member, start_standby, wait_ready


def test_a_halt_in_force_when_the_active_dies_holds_on_the_standby(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    active = member(tmp_path, firm_dsn, "a", sim).start()
    standby = start_standby(member(tmp_path, firm_dsn, "b", sim))
    try:
        answer = httpx.post(
            f"{active.url}/v1/halt", json={"reason": "desk says stop"}, headers=ADMIN, timeout=5
        )
        assert answer.status_code == 200, answer.text
        active.kill()
        wait_ready(standby, 15)
        taken = status(standby)
        assert taken["state"] == "halted"
        assert taken["halt"]["trigger"] == "manual"
        assert "desk says stop" in taken["halt"]["reason"]
    finally:
        standby.kill()
        active.kill()


def test_joining_a_pair_with_a_sqlite_journal_in_the_state_dir_is_refused(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    alone = member(tmp_path, firm_dsn, "a", sim)
    alone.state_dir.mkdir(parents=True)
    (alone.state_dir / "journal.sqlite3").write_bytes(b"x" * 100)
    done = alone.serve_refused()
    assert done.returncode == 2, done.stderr
    assert "the pair's journal in PostgreSQL is empty" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_an_empty_pair_journal_after_this_member_was_active_is_refused_unless_asked(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    active = member(tmp_path, firm_dsn, "a", sim).start()
    assert active.terminate() == 0
    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "journal_{ACCOUNT}" CASCADE')  # type: ignore[arg-type]
    done = active.serve_refused()
    assert done.returncode == 2, done.stderr
    assert "never a fresh start" in done.stderr and "Traceback" not in done.stderr
    active.start(30.0, "--new-journal")
    active.terminate()


def test_a_pair_member_without_postgresql_at_start_refuses_with_one_line(tmp_path: Path) -> None:
    nowhere = "postgresql://gateway@127.0.0.1:1/firm"
    done = member(tmp_path, nowhere, "a", tmp_path / "sim.sqlite3").serve_refused()
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("gateway: firm: cannot connect to the firm's PostgreSQL")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_pair_member_without_its_dsn_variable_refuses_with_one_line(tmp_path: Path) -> None:
    done = member(tmp_path, "", "a", tmp_path / "sim.sqlite3").serve_refused()
    assert done.returncode == 2, done.stderr
    assert "GATEWAY_FIRM_DSN is not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_pair_member_without_psycopg_is_a_config_error(
    make_config: Callable[..., GatewayConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config({"firm": {"gateway_id": "a", "account": ACCOUNT}})
    for name in ("gateway.http.pair", "gateway.firm.pair", "gateway.store.pg"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # imported afresh
    monkeypatch.setitem(sys.modules, "psycopg", None)  # type: ignore[arg-type]  # not installed
    with pytest.raises(ConfigError, match=r"firm: needs psycopg"):
        serve(config)
