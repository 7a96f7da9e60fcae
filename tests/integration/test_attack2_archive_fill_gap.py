"""Attack: ``gateway archive`` after a kill -9 must not carry away an order whose fills the
journal never got.

A kill -9 between an order's ``filled`` status and its fill event leaves the order short of its
fills in the journal; the next start's fill recovery (gateway.pipeline.fill_recovery) asks the
broker for them, or reports a ``fill_gap``. An operator who archives before that start (the
state dir's lock is free after a kill -9) moves the filled order, final and old, into the
archive with its fills missing: the start that follows reads only the live journal's orders,
so the fill was neither recovered nor reported. Fixed: such an order (and its group) stays."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.config import GatewayConfig
from gateway.store.archive import archive
from tests.conftest import api_client, signal
from tests.integration.test_archive import settled


def _sql(path: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(sql, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


async def _lost_fill(make_config: Callable[..., GatewayConfig], make_service: Any) -> Any:
    config = make_config()
    service = await make_service(config)
    async with api_client(service) as client:
        answer = await client.post("/v1/signals", json=signal("a2-gap", quantity=3))
        assert answer.json()["decision"] == "accepted", answer.text
    await settled(service)
    journal = service.journal.path
    await service.stop()
    ((coid, filled),) = _sql(
        journal, "SELECT client_order_id, filled_quantity FROM orders WHERE signal_id='a2-gap'"
    )
    assert filled == "3"
    # What a kill -9 between the order's status and its fill event leaves.
    _sql(journal, "DELETE FROM fills WHERE client_order_id = ?", (coid,))
    return config, journal, coid


def _fills_of(journal: Any, coid: str) -> int:
    return len(_sql(journal, "SELECT 1 FROM fills WHERE client_order_id = ?", (coid,)))


async def test_without_an_archive_the_restart_recovers_the_lost_fill(
    make_config: Callable[..., GatewayConfig], make_service: Any
) -> None:
    config, journal, coid = await _lost_fill(make_config, make_service)
    service = await make_service(config)
    assert _fills_of(journal, coid) >= 1  # recovered from the broker's executions
    await service.stop()


async def test_an_archive_before_the_restart_keeps_the_lost_fill_recoverable(
    make_config: Callable[..., GatewayConfig], make_service: Any
) -> None:
    config, journal, coid = await _lost_fill(make_config, make_service)
    done = archive(config.gateway.state_dir, datetime.now(UTC).isoformat(), label="a2-gap")
    service = await make_service(config)
    live = _fills_of(journal, coid)
    archived = 0 if done.path is None else _fills_of(done.path, coid)
    gaps = _sql(journal, "SELECT payload FROM events WHERE kind = 'fill_gap'")
    await service.stop()
    assert live + archived >= 1 or gaps, (
        f"order {coid}: no fill journaled anywhere and no fill_gap reported "
        f"(archive moved {done.counts})"
    )
