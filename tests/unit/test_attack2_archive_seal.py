"""Attack: ``gateway archive`` leaves the journal sealed when it closes it cleanly.

Archiving opens the journal through open_journal, which removes the seal before its first
write; it then closed the journal without sealing it again, so the start after every archive
(a nightly job's, even one that moved nothing) paid SQLite's full integrity check, the cost the
seal exists to remove (past a unit's start timeout at millions of signals). Fixed: a clean
archive seals the journal as a clean stop does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.store.archive import archive
from gateway.store.journal import Journal
from gateway.store.seal import seal_path, unsealed_because


def _journal(directory: Path) -> Path:
    path = directory / "journal.sqlite3"
    journal = Journal(path)
    for n in range(20):
        journal.record_event("note", {"n": n})
    journal.close()
    assert unsealed_because(path) is None
    return path


def test_an_archive_that_moves_nothing_leaves_the_journal_sealed(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    done = archive(tmp_path, "2000-01-01T00:00:00+00:00", label="2000-01-01")
    assert done.path is None
    assert unsealed_because(path) is None


def test_an_archive_that_moves_rows_seals_the_file_as_it_left_it(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    done = archive(tmp_path, datetime.now(UTC).isoformat(), label="2026-11-30")
    assert done.path is not None and done.counts["events"] > 0
    assert unsealed_because(path) is None
    # And the seal is the file's: a write after it breaks it.
    journal = Journal(path)
    assert not seal_path(path).exists()
    journal.record_event("note", {"after": True})
    journal.close()
    assert unsealed_because(path) is None  # sealed again by that clean close
