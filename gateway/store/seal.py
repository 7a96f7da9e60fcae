"""The journal's seal: a clean stop vouches for the file, so the next start can skip SQLite's
integrity check, whose cost grows with every signal ever journaled (seconds per million).

A clean close (final WAL checkpoint, last connection closed, no WAL left) writes
``journal.sqlite3.seal`` beside the journal: the file's identity as the filesystem records it
(inode, size, modification and change times in nanoseconds; not the device number, which a
remount may change), its SQLite header (file change counter, page count) and a SHA-256 of its
first and last pages. A start whose seal matches the file in all of these opens it without the
integrity check; any difference (no seal after a kill -9, a WAL with content, a file written,
replaced, copied or restored since) means the full check, as a start without a seal always had.

Why not a SHA-256 of the whole file: it reads every byte, 1.7 GB per million signals here, which
is seconds at a million and many at five (measured: bench/journal_growth.py), the cost the seal
exists to remove. The change time is the kernel's own record that the file was written: no
write, truncate, copy-over or restore leaves it as it was, and userspace cannot set it back.
What it cannot see is the disk changing bytes under the filesystem at rest (the disk's and
filesystem's checksums are for that; the integrity check, which reads structure, not every
byte of a row, would miss most of those too).

The seal is removed at start before the journal's first write (and the removal made durable),
so a crash during the run can never leave a seal vouching for a file that has changed since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway.store.journal")

SEAL_SUFFIX = ".seal"
FORMAT = 1
_MAGIC = b"SQLite format 3\x00"
# A write after the seal must get a change time later than the one the seal records; file
# times come from the kernel's coarse clock (a few ms), so the seal waits that clock past it
# (past the next second on a filesystem that keeps whole seconds).
_CLOCK_WAIT_S = 1.5
_SECOND_NS = 1_000_000_000
# Linux's CLOCK_REALTIME_COARSE (the clock file times are taken from); Python does not name it.
_COARSE_CLOCK = 5


def seal_path(journal: Path) -> Path:
    return journal.with_name(journal.name + SEAL_SUFFIX)


def _header(fd: int) -> tuple[int, int, int] | None:
    """(page size, file change counter, page count) from the SQLite header, None if none."""
    head = os.pread(fd, 100, 0)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return None
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    return page_size, int.from_bytes(head[24:28], "big"), int.from_bytes(head[28:32], "big")


def fingerprint(journal: Path) -> dict[str, Any] | None:
    """What the seal records of the file (bounded cost: a stat and two pages), None if it is
    not an SQLite file."""
    fd = os.open(journal, os.O_RDONLY)
    try:
        header = _header(fd)
        if header is None:
            return None
        page_size, counter, pages = header
        st = os.fstat(fd)
        last = max(st.st_size - page_size, 0)
        ends = hashlib.sha256(os.pread(fd, page_size, 0) + os.pread(fd, page_size, last))
        return {
            "format": FORMAT,
            "name": journal.name,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "change_counter": counter,
            "page_count": pages,
            "ends_sha256": ends.hexdigest(),
        }
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _wal_has_content(journal: Path) -> bool:
    wal = journal.with_name(journal.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _wait_clock_past(ns: int) -> bool:
    if ns % _SECOND_NS == 0:  # whole seconds: a write later in this second would look the same
        ns += _SECOND_NS
    deadline = time.monotonic() + _CLOCK_WAIT_S
    while time.clock_gettime_ns(_COARSE_CLOCK) <= ns:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def write_seal(journal: Path) -> bool:
    """Seal the journal after its last connection closed cleanly; False (and no seal) when the
    file cannot be vouched for as it is. Never raises: an unsealed journal only costs the next
    start the full check."""
    try:
        if _wal_has_content(journal):
            log.warning("journal not sealed: its WAL still holds writes (checked at next start)")
            return False
        fd = os.open(journal, os.O_RDONLY)
        try:
            os.fsync(fd)  # the seal must never reach the disk before the file it vouches for
        finally:
            os.close(fd)
        seal = fingerprint(journal)
        if seal is None or not _wait_clock_past(max(seal["ctime_ns"], seal["mtime_ns"])):
            log.warning("journal not sealed: no SQLite header, or its times are in the future")
            return False
        target = seal_path(journal)
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w") as out:
            out.write(json.dumps(seal))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
        _fsync_dir(journal.parent)
        return True
    except OSError as exc:
        log.warning("journal not sealed (checked at next start): %s", exc)
        return False


def unsealed_because(journal: Path) -> str | None:
    """None when a seal vouches for the journal as it is now; otherwise why it does not (the
    start then runs the full integrity check)."""
    path = seal_path(journal)
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return "no seal (the last stop was not clean)"
    except (OSError, ValueError) as exc:
        return f"seal unreadable ({exc})"
    if _wal_has_content(journal):
        return "the WAL holds writes made after the seal"
    try:
        current = fingerprint(journal)
    except OSError as exc:
        return f"journal unreadable ({exc})"
    if current is None:
        return "no SQLite header"
    if not isinstance(recorded, dict):
        return "seal unreadable (not an object)"
    differ = sorted(k for k in current if recorded.get(k) != current[k])
    if differ:
        return f"the seal does not match the file ({', '.join(differ)})"
    return None


def remove_seal(journal: Path) -> None:
    """Remove the seal for good (durably) before the journal is written: from here until a
    clean close, nothing vouches for the file. Raises OSError if it cannot be removed."""
    path = seal_path(journal)
    with contextlib.suppress(FileNotFoundError):  # a seal half-written when a stop was cut short
        path.with_name(path.name + ".tmp").unlink()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _fsync_dir(journal.parent)
