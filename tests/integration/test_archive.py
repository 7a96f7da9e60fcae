"""``gateway archive``: what moves (decided signals whose orders are all final, those orders,
their fills, old stream and journal events) and what stays (undecided signals, open orders and
every order of their bracket, anything newer); a replay of an archived signal_id answers its
first decision; the event stream from after=0 reads the archive then the live journal; a crash
between writing the archive and deleting from the live journal converges on a rerun."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from gateway.store.archive import ArchiveRefused, archive
from gateway.store.events import EventLog
from gateway.store.statedir import StateDirLock
from tests.conftest import api_client, signal


def rows(path: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def ids(path: Path, table: str, key: str) -> set[str]:
    return {row[0] for row in rows(path, f"SELECT {key} FROM {table}")}


async def settled(service: GatewayService) -> None:
    """Until no order is still becoming what the simulated broker makes of it, and every fill
    is journaled."""
    for _ in range(300):
        service.engine.flush_order_updates()
        orders = service.journal.orders()
        filled = {o.client_order_id for o in orders if o.status == "filled"}
        journaled = {f.client_order_id for f in service.journal.fills()}
        if filled <= journaled and all(
            o.order_type != "market" for o in orders if o.status in ("new", "accepted")
        ):
            return
        await asyncio.sleep(0.01)


async def _history(service: GatewayService) -> tuple[dict[str, str], str]:
    """Old trading: filled, rejected, a resting limit, a bracket whose legs rest; then the cut,
    then a newer filled signal. Returns the decisions' JSON by signal_id, and the cut."""
    decided: dict[str, str] = {}
    async with api_client(service) as client:
        for body in (
            signal("old-fill-1", quantity=1),
            signal("old-fill-2", quantity=2, symbol="MSFT"),
            signal("old-reject", quantity=10**9),
            signal("old-rest", quantity=1, order_type="limit", limit_price=150),
            signal("old-bracket", quantity=1, stop_loss_price=190, take_profit_price=220),
        ):
            answer = await client.post("/v1/signals", json=body)
            assert answer.status_code == 200, answer.text
            decided[body["signal_id"]] = answer.text
        await settled(service)
        await asyncio.sleep(0.01)
        cut = datetime.now(UTC).isoformat()
        await asyncio.sleep(0.01)
        answer = await client.post("/v1/signals", json=signal("new-fill", quantity=1))
        decided["new-fill"] = answer.text
        await settled(service)
    # An intent with no decision (a crash between them): it must never move.
    service.journal._db.execute(  # the pipeline's own insert, without a broker
        "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, received_at) "
        "VALUES ('old-undecided', 'h', ?, 'momentum', 'AAPL', '2000-01-01T00:00:00+00:00')",
        (json.dumps(signal("old-undecided")),),
    )
    service.journal.commit_now()
    return decided, cut


@pytest.fixture
async def archived(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> dict[str, Any]:
    config = make_config()
    service = await make_service(config)
    decided, cut = await _history(service)
    journal = service.journal.path
    stream = rows(journal, "SELECT seq, type, payload FROM stream ORDER BY seq")
    await service.stop()
    done = archive(config.gateway.state_dir, cut, label="2026-11-30")
    return {
        "config": config,
        "decided": decided,
        "done": done,
        "journal": journal,
        "stream": stream,
    }


def test_what_moves_and_what_stays(archived: dict[str, Any]) -> None:
    journal, done = archived["journal"], archived["done"]
    assert done.path is not None and done.path.parent == journal.parent / "archive"
    archive_file = done.path
    moved = ids(archive_file, "signals", "signal_id")
    assert moved == {"old-fill-1", "old-fill-2", "old-reject"}
    live = ids(journal, "signals", "signal_id")
    assert live == {"old-rest", "old-bracket", "new-fill", "old-undecided"}
    assert ids(journal, "archived_signals", "signal_id") == moved  # a stub each
    # The bracket's entry filled, its legs rest: the whole group stays, as does the limit.
    live_orders = rows(journal, "SELECT signal_id, status FROM orders")
    assert {s for s, _ in live_orders} == {"old-rest", "old-bracket", "new-fill"}
    assert len([s for s, _ in live_orders if s == "old-bracket"]) == 3
    archived_orders = rows(archive_file, "SELECT signal_id, status FROM orders")
    assert sorted(archived_orders) == [("old-fill-1", "filled"), ("old-fill-2", "filled")]
    assert len(rows(archive_file, "SELECT * FROM fills")) == 2
    # Every row is in exactly one place.
    for table, key in (("signals", "signal_id"), ("orders", "client_order_id"), ("stream", "seq")):
        assert not ids(archive_file, table, key) & ids(journal, table, key), table
    assert done.counts["signals"] == 3 and done.counts["orders"] == 2


def test_the_stream_reads_the_archive_then_the_live_journal(archived: dict[str, Any]) -> None:
    journal, before = archived["journal"], archived["stream"]
    live_first = rows(journal, "SELECT MIN(seq) FROM stream")[0][0]
    assert live_first is not None and live_first > 1  # the old events moved
    log = EventLog(journal)
    try:
        for page in (1, 3, 500):
            got: list[Any] = []
            while True:
                batch = log.events_after(got[-1][0] if got else 0, page)
                got += [(e.seq, e.type, e.data) for e in batch]
                if len(batch) < page:
                    break
            assert got == [tuple(row) for row in before], page
        assert log.last_seq() == before[-1][0]
        mine = log.events_after(0, 1000, {"meanrev"})
        assert {e.type for e in mine} == {"state"}
    finally:
        log.close()


async def test_a_replay_of_an_archived_signal_answers_its_first_decision(
    archived: dict[str, Any], make_service: Callable[..., Any]
) -> None:
    service = await make_service(archived["config"])
    body = signal("old-fill-1", quantity=1)
    async with api_client(service) as client:
        again = await client.post("/v1/signals", json=body)
        other = await client.post("/v1/signals", json={**body, "quantity": 3})
        fills = (await client.get("/v1/fills")).json()
        gone = await client.get("/v1/orders/gw-nope")
    assert again.status_code == 200
    assert again.text == archived["decided"]["old-fill-1"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    # The listings read the live journal: the archived fills are in the archive file.
    assert fills and {f["signal_id"] for f in fills} == {"old-bracket", "new-fill"}
    assert gone.status_code == 404


async def test_the_event_stream_over_http_is_complete_across_the_archive(
    archived: dict[str, Any], make_service: Callable[..., Any]
) -> None:
    import httpx

    from tests.integration.sse import frames, headers, serving

    service = await make_service(archived["config"])
    want = [seq for seq, _, _ in archived["stream"]]
    got: list[int] = []
    async with serving(service) as url, httpx.AsyncClient(base_url=url, headers=headers()) as c:
        async with c.stream("GET", "/v1/events", params={"after": 0}) as stream:

            async def take() -> None:
                async for frame in frames(stream):
                    if frame.event is not None:
                        got.append(int(frame.id))  # type: ignore[arg-type]
                        if len(got) >= len(want):
                            return

            await asyncio.wait_for(take(), 10)
    assert got[: len(want)] == want


def test_a_crash_between_the_archive_and_the_live_delete_converges(
    make_config: Callable[..., GatewayConfig], archived: dict[str, Any]
) -> None:
    journal = archived["journal"]
    state_dir = journal.parent
    # Make more history old: a later cut moves the rest of what is final.
    later = datetime.now(UTC).isoformat()
    before = {t: sorted(rows(journal, f"SELECT * FROM {t}")) for t in ("signals", "orders")}

    def crash() -> None:
        raise KeyboardInterrupt("killed between the archive and the live delete")

    with pytest.raises(KeyboardInterrupt):
        archive(state_dir, later, label="2026-12-01", before_delete=crash)
    left = state_dir / "archive" / "journal-until-2026-12-01.sqlite"
    assert left.exists()  # complete, verified, but not listed: the live journal kept all
    assert {t: sorted(rows(journal, f"SELECT * FROM {t}")) for t in before} == before
    done = archive(state_dir, later, label="2026-12-01")
    assert done.tidied == ["journal-until-2026-12-01.sqlite"]
    assert done.path == left
    moved = ids(left, "signals", "signal_id")
    assert "new-fill" in moved and not moved & ids(journal, "signals", "signal_id")
    assert "old-undecided" in ids(journal, "signals", "signal_id")
    again = archive(state_dir, later, label="2026-12-01")
    assert again.path is None and not again.tidied  # converged: nothing left to move


def test_refused_while_a_gateway_holds_the_state_dir(archived: dict[str, Any]) -> None:
    state_dir = archived["journal"].parent
    with StateDirLock(state_dir), pytest.raises(ArchiveRefused, match="in use"):
        archive(state_dir, datetime.now(UTC).isoformat(), label="x")


async def test_a_missing_archive_is_a_clear_503_never_a_gap(
    archived: dict[str, Any], make_service: Callable[..., Any]
) -> None:
    archived["done"].path.rename(archived["done"].path.with_suffix(".moved"))
    service = await make_service(archived["config"])
    sent_before = dict(service.broker.submit_counts)
    async with api_client(service) as client:
        answer = await client.get("/v1/events", params={"after": 0})
        replay = await client.post("/v1/signals", json=signal("old-fill-1", quantity=1))
    assert answer.status_code == 503
    assert answer.json()["code"] == "journal_unavailable"
    assert "journal-until-2026-11-30.sqlite is missing" in answer.json()["message"]
    # Never decided anew: the stub says it was decided, its decision is out of reach.
    assert replay.status_code == 503
    assert replay.json()["code"] == "journal_unavailable", replay.text
    assert dict(service.broker.submit_counts) == sent_before  # nothing sent for it
