"""``gateway firm ...`` against PostgreSQL alone (no gateway running): the resume rules, the
schema's version, and a gateway role with only the least privileges the README lists."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import RESUME_CODE, ROOT, TEST_ENV, write_config
from tests.firm.conftest import HOST, firm_gateway, status

pytestmark = pytest.mark.timeout(120)


def firm_cli(config: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "firm", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**TEST_ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GATEWAY_FIRM_DSN": dsn},
        cwd=ROOT,
    )


def config(tmp_path: Path, cooldown: float = 0) -> Path:
    risk = {"emergency": {"resume_cooldown_s": cooldown}}
    return write_config(tmp_path, {"firm": {"gateway_id": "ops"}}, risk)


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_firm_resume_follows_the_cooldown_unless_forced(tmp_path: Path, firm_dsn: str) -> None:
    path = config(tmp_path, cooldown=300)
    halted = answer(firm_cli(path, firm_dsn, "halt", "drill"))
    assert halted["halted"] is True and halted["reason"] == "drill"
    again = answer(firm_cli(path, firm_dsn, "halt", "second"))
    assert again["reason"] == "drill"  # the first reason stays
    refused = firm_cli(path, firm_dsn, "resume")
    assert refused.returncode == 1
    assert refused.stderr.startswith("gateway: firm: cooldown_active")
    wrong = firm_cli(path, firm_dsn, "resume", "--force", "--auth-code", "nope")
    assert wrong.returncode == 1 and "auth_code_invalid" in wrong.stderr
    lifted = answer(firm_cli(path, firm_dsn, "resume", "--force", "--auth-code", RESUME_CODE))
    assert lifted["halted"] is False
    listed = answer(firm_cli(path, firm_dsn, "status"))
    assert listed["halt"] is None and listed["gateways"] == []
    with psycopg.connect(firm_dsn) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM firm_events ORDER BY seq")]
    assert kinds == ["halt", "halt", "resume (forced)"]


def test_a_schema_newer_than_this_gateway_refuses(tmp_path: Path, firm_dsn: str) -> None:
    path = config(tmp_path)
    assert answer(firm_cli(path, firm_dsn, "migrate")) == {"schema_version": 1}
    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO firm_schema (version) VALUES (99)")
    done = firm_cli(path, firm_dsn, "status")
    assert done.returncode == 2
    assert "version 99, newer than this gateway's 1" in done.stderr
    refused = firm_gateway(tmp_path, firm_dsn, "new").serve_refused()
    assert refused.returncode == 2 and "version 99" in refused.stderr


GRANTS = """
GRANT CONNECT ON DATABASE {db} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON firm_schema TO {role};
GRANT SELECT, UPDATE ON firm_control TO {role};
GRANT SELECT, INSERT ON firm_events TO {role};
GRANT USAGE ON SEQUENCE firm_events_seq_seq TO {role};
GRANT SELECT, INSERT, UPDATE ON firm_gateways TO {role};
GRANT SELECT, INSERT, DELETE ON firm_reservations TO {role};
"""


def test_a_gateway_runs_with_the_readmes_least_privileges(tmp_path: Path, firm_dsn: str) -> None:
    answer(firm_cli(config(tmp_path), firm_dsn, "migrate"))  # as the owner
    role = f"gw_{uuid.uuid4().hex[:8]}"
    db = firm_dsn.rsplit("/", 1)[1]
    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        for statement in GRANTS.format(db=db, role=role).strip().splitlines():
            conn.execute(statement)
    try:
        least = f"postgresql://{role}@{HOST}/{db}"
        firm = {"max_gross_exposure": 1_000_000}
        with firm_gateway(tmp_path, least, "least", firm=firm) as gw:
            assert status(gw)["firm"]["connected"] is True
            halted = firm_cli(config(tmp_path / "c2"), least, "kill", "with least privileges")
            assert halted.returncode == 0, halted.stderr
            deadline = time.monotonic() + 5
            while status(gw)["state"] != "halted" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status(gw)["halt"]["trigger"] == "firm_halt"
            assert answer(firm_cli(config(tmp_path / "c3"), least, "resume"))["halted"] is False
    finally:
        with psycopg.connect(firm_dsn, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
