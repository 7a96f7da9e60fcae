"""The firm's tests: each gets a fresh database on the local PostgreSQL (127.0.0.1:5432, trust
authentication), dropped afterwards. Nothing here is skipped: CI starts the server (.ci/run)."""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
HOST = os.environ.get("GATEWAY_TEST_PG_HOST", "127.0.0.1:5432")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STRATEGY = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
FAST_RISK: dict[str, Any] = {"emergency": {"resume_cooldown_s": 0}}


def _server_user() -> str:
    """The first role the local server lets in (trust): this user's, postgres, root."""
    tried = []
    for user in dict.fromkeys([getpass.getuser(), "postgres", "root"]):
        try:
            with psycopg.connect(f"postgresql://{user}@{HOST}/postgres", connect_timeout=3):
                return user
        except psycopg.Error as exc:
            tried.append(f"{user}: {str(exc).strip()}")
    raise RuntimeError(f"no PostgreSQL on {HOST} lets us in: " + "; ".join(tried))


@pytest.fixture(scope="session")
def pg_user() -> str:
    return _server_user()


@pytest.fixture
def firm_dsn(pg_user: str) -> Iterator[str]:
    """A fresh database for one test."""
    name = f"firm_test_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{pg_user}@{HOST}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{pg_user}@{HOST}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def firm_gateway(
    directory: Path,
    dsn: str,
    gateway_id: str,
    *,
    firm: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
) -> GatewayProcess:
    """A real ``gateway serve`` of the firm, importing this checkout's code."""
    section = {"gateway_id": gateway_id, "grace_s": 1.0, **(firm or {})}
    config = {"firm": section, **(gateway or {})}
    env = {"GATEWAY_FIRM_DSN": dsn, "PYTHONPATH": str(ROOT)}
    return GatewayProcess(
        directory / gateway_id, gateway=config, risk={**FAST_RISK, **(risk or {})}, env=env
    )


def status(gw: GatewayProcess) -> dict[str, Any]:
    return httpx.get(f"{gw.url}/v1/status", headers=STRATEGY, timeout=5).json()  # type: ignore[no-any-return]
