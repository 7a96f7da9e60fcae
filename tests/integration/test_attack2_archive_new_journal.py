"""Attack: ``gateway archive`` never deletes an archive file another journal lists.

``--new-journal`` moves the journal aside (``journal.sqlite3.replaced-*``, kept, never deleted)
but leaves ``state_dir/archive`` where it is: the files there belong to the journal moved aside,
which still lists them. The next ``gateway archive`` tidies "what an interrupted run left" by
deleting every ``journal-until-*`` file the live journal does not list, so it deleted the old
journal's archives: its archived signals, orders and fills, which exist nowhere else.
Fixed: ``--new-journal`` moves ``archive`` aside with the journal (``archive.replaced-*``)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.config import GatewayConfig
from gateway.store.archive import archive
from tests.conftest import api_client, signal
from tests.integration.test_archive import settled


async def _trade_then_archive(service: Any, signal_id: str, label: str, state_dir: Any) -> Any:
    async with api_client(service) as client:
        answer = await client.post("/v1/signals", json=signal(signal_id, quantity=1))
        assert answer.json()["decision"] == "accepted", answer.text
    await settled(service)
    await service.stop()
    await asyncio.sleep(0.01)
    return archive(state_dir, datetime.now(UTC).isoformat(), label=label)


async def test_archiving_a_new_journal_keeps_the_old_journals_archives(
    make_config: Callable[..., GatewayConfig], make_service: Callable[..., Any]
) -> None:
    config = make_config()
    state_dir = config.gateway.state_dir
    first = await _trade_then_archive(await make_service(config), "a2-old", "2026-11-01", state_dir)
    assert first.path is not None and first.path.exists()
    # `gateway serve --new-journal`: the journal (and its seal) moved aside, kept.
    service = await make_service(config, new_journal=True)
    [aside] = state_dir.glob("journal.sqlite3.replaced-*[0-9]Z")
    second = await _trade_then_archive(service, "a2-new", "2026-11-02", state_dir)
    assert second.path is not None
    # The journal moved aside still lists its archive: the file must still be there.
    db = sqlite3.connect(aside)
    try:
        listed = [name for (name,) in db.execute("SELECT name FROM archives")]
    finally:
        db.close()
    assert listed == [first.path.name]
    # Wherever it was kept (beside its journal moved aside), it was not deleted.
    kept = list(state_dir.glob(f"archive*/{first.path.name}"))
    assert kept, f"removed as a leftover: {second.tidied}"
    assert ("a2-old",) in sqlite3.connect(kept[0]).execute("SELECT signal_id FROM signals")
