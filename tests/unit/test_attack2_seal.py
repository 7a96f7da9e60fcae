"""Attack: nothing but the very file a clean stop sealed skips the integrity check.

Restores and replacements an operator may do between a stop and a start (a backup copied back
with ``cp -p``, which keeps the modification time; a file renamed over the journal; a hard link
written through), a seal whose JSON is valid but whose fields have the wrong types, and a WAL
left by a later run that was killed: each means the full check, never a skipped one."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from gateway.store.journal import Journal
from gateway.store.seal import seal_path, unsealed_because


def _journal(directory: Path) -> Path:
    path = directory / "journal.sqlite3"
    journal = Journal(path)
    for n in range(20):
        journal.record_event("note", {"n": n, "pad": "y" * 100})
    journal.close()
    assert unsealed_because(path) is None
    return path


def test_a_backup_restored_with_cp_p_is_not_vouched_for(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    backup = tmp_path / "backup.sqlite3"
    subprocess.run(["cp", "-p", str(path), str(backup)], check=True)
    subprocess.run(["cp", "-p", str(backup), str(path)], check=True)  # restored over it
    assert unsealed_because(path) is not None


def test_a_file_renamed_over_the_journal_is_not_vouched_for(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    twin = tmp_path / "twin.sqlite3"
    shutil.copy2(path, twin)
    os.replace(twin, path)
    assert unsealed_because(path) is not None


def test_a_write_through_a_hard_link_is_seen(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    link = tmp_path / "link.sqlite3"
    os.link(path, link)
    db = sqlite3.connect(link)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("INSERT INTO events (kind, payload, at) VALUES ('x', '{}', 'now')")
    db.commit()
    db.close()
    assert unsealed_because(path) is not None


@pytest.mark.parametrize("field", ["ino", "size", "ctime_ns", "page_count"])
def test_a_seal_with_a_field_of_the_wrong_type_does_not_vouch(tmp_path: Path, field: str) -> None:
    path = _journal(tmp_path)
    recorded = json.loads(seal_path(path).read_text())
    recorded[field] = str(recorded[field])
    seal_path(path).write_text(json.dumps(recorded))
    assert unsealed_because(path) is not None


@pytest.mark.parametrize("text", ["[]", "null", "1", '"x"', "{}"])
def test_a_seal_that_is_not_an_object_of_fields_does_not_vouch(tmp_path: Path, text: str) -> None:
    path = _journal(tmp_path)
    seal_path(path).write_text(text)
    assert unsealed_because(path) is not None
    Journal(path).close()  # and the start goes on (the full check), no crash


def test_a_seal_beside_a_wal_left_by_a_killed_later_writer_does_not_vouch(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    saved = seal_path(path).read_text()
    # A writer that never went through open_journal (it would have removed the seal), killed
    # with its writes in the WAL.
    code = (
        "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA wal_autocheckpoint=0'); "
        "db.execute(\"INSERT INTO events (kind, payload, at) VALUES ('x', '{}', 'now')\"); "
        "db.commit(); os._exit(0)"
    )
    subprocess.run(["python", "-c", code, str(path)], check=True)
    seal_path(path).write_text(saved)
    assert unsealed_because(path) is not None
