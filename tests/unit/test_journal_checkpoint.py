"""The journal copies its WAL into the database file in the background while it runs."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.store.journal import Journal


def test_committed_rows_reach_the_database_file_while_the_journal_is_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path, checkpoint_interval_s=0.01)
    try:
        journal.record_event("note", {"marker": "checkpointed-7f3a"})
        arrived = threading.Event()
        for _ in range(1000):  # each wait ends early once the row is in the file
            if b"checkpointed-7f3a" in path.read_bytes():
                arrived.set()
                break
            arrived.wait(0.01)
        assert arrived.is_set()
    finally:
        journal.close()
