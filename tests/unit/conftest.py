"""The journal's tests run on both backends: ``backend`` is SQLite, then PostgreSQL on a fresh
database (the local server CI starts: see tests/firm/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.journal_backends import Backend


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    import psycopg

    from tests.firm.conftest import HOST, _server_user

    user = _server_user()
    name = f"journal_test_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{user}@{HOST}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield Backend("postgres", f"postgresql://{user}@{HOST}/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
