"""A journal stopped cleanly (SIGTERM, after a 16-client flood) and then damaged on disk by one
flipped byte in a page in its middle, its size unchanged (and, in one case, its modification
time put back): ``gateway serve`` must refuse to start with one line and exit 2.

Guarantee pinned (Durability contract details (v2): a journal that fails SQLite's integrity
check at start refuses to start with one line, exit 2): a seal written at a clean shutdown
that lets the start skip the integrity check must not vouch for a file changed since, not even
one whose size and modification time are those the seal saw."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.e2e import attack_flood as af
from tests.e2e.process import GatewayProcess


def _detected(path: Path) -> bool:
    """Does SQLite's integrity check (or opening it) find ``path`` damaged?"""
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError:
        return True
    return rows != [("ok",)]


def _flip_a_byte_in_the_middle(path: Path, scratch: Path) -> int:
    """Flip one byte (a b-tree page's type byte) in a page as near the file's middle as can be
    found where the damage is one SQLite's integrity check sees (a page in use: a free page's
    damage harms nothing); tried on a copy first. Returns the offset flipped."""
    data = path.read_bytes()  # read as bytes only: opening it with SQLite could touch it
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = len(data) // page_size
    assert pages > 8, pages
    middle = pages // 2
    order = sorted(range(2, pages), key=lambda p: (abs(p - middle), p))
    for page in order:
        offset = page * page_size
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        scratch.write_bytes(bytes(damaged))
        if _detected(scratch):
            with path.open("r+b") as f:
                f.seek(offset)
                f.write(bytes([data[offset] ^ 0xFF]))
            return offset
    raise AssertionError("no page whose one-byte damage SQLite detects")


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_byte_flipped_after_a_clean_stop_refuses_to_start(
    tmp_path: Path, keep_mtime: bool
) -> None:
    gw = GatewayProcess(tmp_path, risk=af.RISK).start()
    try:
        flood = af.Flood(gw.url, per_client=12).start()
        flood.join()
        assert {a.status for a in flood.answers.values()} == {200}
    finally:
        assert gw.terminate() == 0  # a clean stop: the journal may be sealed now
    path = gw.state_dir / "journal.sqlite3"
    before = path.stat()  # what a seal written at the stop saw
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "a clean stop left a WAL behind"
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    shutil.copyfile(path, scratch_dir / "intact.sqlite3")
    assert not _detected(scratch_dir / "intact.sqlite3")
    offset = _flip_a_byte_in_the_middle(path, scratch_dir / "copy.sqlite3")
    shutil.rmtree(scratch_dir)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert after.st_size == before.st_size
    assert not keep_mtime or after.st_mtime_ns == before.st_mtime_ns
    refused = gw.serve_refused()
    assert refused.returncode == 2, (offset, refused.returncode, refused.stderr[-2000:])
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert "integrity" in lines[0] or "journal" in lines[0], lines[0]
