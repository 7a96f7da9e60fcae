"""The durability setting reaches SQLite: `power` fsyncs every commit, `process` does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.journal import Journal

FULL, NORMAL = 2, 1  # PRAGMA synchronous values


@pytest.mark.parametrize(("durability", "synchronous"), [("power", FULL), ("process", NORMAL)])
def test_the_durability_setting_sets_how_commits_reach_the_disk(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    journal = Journal(tmp_path / "j.sqlite3", durability=durability)  # type: ignore[arg-type]
    try:
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    finally:
        journal.close()
