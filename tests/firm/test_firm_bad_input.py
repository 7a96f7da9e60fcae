"""Bad firm input: one clear line and exit 2, never a traceback, never a gateway trading outside
the firm's view; and no firm section means no PostgreSQL and no psycopg at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ROOT, TEST_ENV, free_port, write_config
from tests.firm.conftest import firm_gateway, status

pytestmark = pytest.mark.timeout(180)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_unknown_key_in_the_firm_section(tmp_path: Path, firm_dsn: str) -> None:
    gw = firm_gateway(tmp_path, firm_dsn, "a", firm={"grace": 3})
    done = gw.cli("check-config")
    assert done.returncode == 2
    assert "firm.grace" in done.stderr and "Extra inputs" in done.stderr
    refused = gw.serve_refused()
    assert refused.returncode == 2
    assert "firm.grace" in refused.stderr


def test_a_firm_section_needs_a_gateway_id(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"firm": {"dsn_env": "X"}})
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**TEST_ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "firm.gateway_id: Field required" in done.stderr


def test_missing_dsn_variable(tmp_path: Path, firm_dsn: str) -> None:
    gw = firm_gateway(tmp_path, firm_dsn, "a", firm={"dsn_env": "NO_SUCH_FIRM_DSN"})
    refused = gw.serve_refused()
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "NO_SUCH_FIRM_DSN" in line and "not set" in line
    done = gw.cli("firm", "status")
    assert done.returncode == 2
    assert "NO_SUCH_FIRM_DSN" in one_line(done.stderr)


def test_a_second_gateway_with_the_same_id_refuses(tmp_path: Path, firm_dsn: str) -> None:
    with firm_gateway(tmp_path, firm_dsn, "twin"):
        second = firm_gateway(tmp_path / "elsewhere", firm_dsn, "twin")
        refused = second.serve_refused()
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "'twin'" in line and "in use" in line


def test_unreachable_dsn_at_a_first_start_refuses(tmp_path: Path, pg_user: str) -> None:
    dead = f"postgresql://{pg_user}@127.0.0.1:{free_port()}/postgres"
    gw = firm_gateway(tmp_path, dead, "a")
    refused = gw.serve_refused()
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "cannot connect to the firm's PostgreSQL" in line
    assert pg_user not in line.split("PostgreSQL:")[0]  # the DSN is never printed
    done = gw.cli("firm", "halt", "x")
    assert done.returncode == 1
    one_line(done.stderr)


def test_unreachable_after_it_ran_before_starts_halted(tmp_path: Path, firm_dsn: str) -> None:
    gw = firm_gateway(tmp_path, firm_dsn, "a")
    with gw:
        pass
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/postgres"
    gw.env["GATEWAY_FIRM_DSN"] = dead
    with gw:
        now = status(gw)
        assert now["state"] == "halted"
        assert now["halt"]["trigger"] == "firm_unreachable"
        assert now["firm"]["connected"] is False
        refused = httpx.post(
            f"{gw.url}/v1/resume", json={}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "firm_unreachable"


def test_continue_without_postgres_at_a_first_start_still_refuses(
    tmp_path: Path, pg_user: str
) -> None:
    dead = f"postgresql://{pg_user}@127.0.0.1:{free_port()}/postgres"
    gw = firm_gateway(tmp_path, dead, "a", firm={"on_disconnect": "continue"})
    assert gw.serve_refused().returncode == 2


def test_firm_commands_need_a_firm_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, {})
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "firm", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**TEST_ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "no firm: section" in one_line(done.stderr)


def test_without_a_firm_section_psycopg_is_never_imported(tmp_path: Path) -> None:
    path = write_config(tmp_path, {})
    probe = f"""
import asyncio, json, sys
from pathlib import Path
from gateway.config import load_config
from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.service import GatewayService
import gateway.cli
async def main():
    svc = GatewayService(load_config(Path({str(path)!r})), environ={{}})
    await svc.start()
    create_app(svc, Tokens("s" * 32, "a" * 32))
    await svc.stop()
asyncio.run(main())
wanted = ("psycopg", "gateway.service.firm", "gateway.firm.link", "gateway.firm.cli")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(wanted))))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


async def test_scope_firm_without_a_firm_section(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/halt", json={"reason": "x", "scope": "firm"})
    assert answer.status_code == 422
    assert answer.json()["code"] == "firm_not_configured"
    answer = await client.post("/v1/kill", json={"reason": "x", "scope": "everything"})
    assert answer.status_code == 422
    assert "scope" in answer.text
