"""The journal's seal: a clean close vouches for the file so the next open skips SQLite's
integrity check; anything that may have changed the file since means the full check."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.store import seal as seal_module
from gateway.store.journal import Journal
from gateway.store.schema import JournalError
from gateway.store.seal import remove_seal, seal_path, unsealed_because, write_seal
from gateway.store.statedir import StateDir, StateDirError

FULL_CHECK = "running the full integrity check"


def _journal(directory: Path, events: int = 50) -> Path:
    path = directory / "journal.sqlite3"
    journal = Journal(path)
    for n in range(events):
        journal.record_event("note", {"n": n, "pad": "x" * 200})
    journal.close()
    return path


def _opened_with_full_check(path: Path, caplog: pytest.LogCaptureFixture) -> bool:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.store.journal"):
        Journal(path).close()
    return any(FULL_CHECK in record.getMessage() for record in caplog.records)


def test_a_clean_close_seals_and_the_next_open_skips_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _journal(tmp_path)
    assert seal_path(path).exists()
    assert unsealed_because(path) is None
    assert not _opened_with_full_check(path, caplog)
    assert seal_path(path).exists()  # sealed again by that clean close


def test_an_open_journal_has_no_seal(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    journal = Journal(path)
    try:
        assert not seal_path(path).exists()  # a crash now leaves nothing vouching for it
    finally:
        journal.close()


def test_no_seal_means_the_full_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _journal(tmp_path)
    seal_path(path).unlink()
    assert unsealed_because(path) == "no seal (the last stop was not clean)"
    assert _opened_with_full_check(path, caplog)


def test_a_write_after_the_seal_breaks_it_even_with_its_times_put_back(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    before = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    with path.open("r+b") as out:  # same size, same inode: only the change time tells
        out.seek(middle)
        out.write(bytes(data[middle : middle + 1]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    why = unsealed_because(path)
    assert why is not None and "ctime_ns" in why


def test_a_damaged_sealed_journal_is_refused(tmp_path: Path) -> None:
    path = _journal(tmp_path, events=400)
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    assert unsealed_because(path) is None  # sealed, and that look changed nothing
    with path.open("r+b") as out:  # a middle page's b-tree header: garbage
        out.seek((pages // 2) * page)
        out.write(b"\x5a" * 16)
    with pytest.raises(JournalError, match="integrity check"):
        Journal(path)
    assert not seal_path(path).exists()


def test_a_seal_copied_from_another_journal_does_not_vouch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine, other = _journal(tmp_path / "a"), _journal(tmp_path / "b")
    shutil.copy(seal_path(other), seal_path(mine))
    why = unsealed_because(mine)
    assert why is not None and "does not match" in why
    assert _opened_with_full_check(mine, caplog)


def test_a_journal_copied_over_a_sealed_one_does_not_match(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    shutil.copy(path, tmp_path / "copy")
    (tmp_path / "copy").replace(path)  # the same bytes, another file
    why = unsealed_because(path)
    assert why is not None and "ino" in why


def test_a_wal_with_writes_is_never_sealed_nor_vouched_for(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"\0" * 32)
    assert unsealed_because(path) == "the WAL holds writes made after the seal"
    seal_path(path).unlink()
    assert write_seal(path) is False and not seal_path(path).exists()


def test_an_unreadable_seal_means_the_full_check(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    seal_path(path).write_text("{not json")
    assert (unsealed_because(path) or "").startswith("seal unreadable")
    seal_path(path).write_text("[]")
    assert (unsealed_because(path) or "").startswith("seal unreadable")
    seal_path(path).write_text(json.dumps({"format": 1}))
    assert "does not match" in (unsealed_because(path) or "")


def test_removing_the_seal_also_removes_a_half_written_one(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    half = seal_path(path).with_name(seal_path(path).name + ".tmp")
    half.write_text("{")
    remove_seal(path)
    assert not seal_path(path).exists() and not half.exists()
    remove_seal(path)  # nothing to remove: fine


def test_a_file_that_is_not_sqlite_is_not_sealed(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"not a database" * 100)
    assert write_seal(path) is False
    assert unsealed_because(path) == "no seal (the last stop was not clean)"


def test_a_seal_without_its_journal_is_lost_state_not_a_fresh_start(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    path.unlink()  # the journal lost, its seal left: this state dir held a journal
    with pytest.raises(StateDirError, match=r"journal\.sqlite3\.seal"):
        StateDir(tmp_path).check_journal(new_journal=False)


def test_a_new_journal_moves_the_old_seal_aside_with_its_journal(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    StateDir(tmp_path).check_journal(new_journal=True)
    assert not path.exists() and not seal_path(path).exists()
    assert len(list(tmp_path.glob("journal.sqlite3.replaced-*.seal"))) == 1


def test_the_seal_waits_for_the_clock_to_pass_the_files_last_change(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    recorded = json.loads(seal_path(path).read_text())
    assert time.clock_gettime_ns(5) > recorded["ctime_ns"]  # CLOCK_REALTIME_COARSE
    # A filesystem keeping whole seconds: the seal waits past the next second.
    whole = time.time_ns() // 10**9 * 10**9
    assert seal_module._wait_clock_past(whole)
    assert time.clock_gettime_ns(5) > whole + 10**9
