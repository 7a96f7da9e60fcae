"""``gateway archive --before DATE``: old trading days out of the live journal, into an archive
file under ``state_dir/archive``, so the live journal's size (and every read of it) stays flat
however long the gateway trades.

The steps, each of which a kill -9 may interrupt:

1. Take the state dir's lock (the one ``gateway serve`` holds while it runs): archiving never
   runs beside a gateway, so nothing changes the journal meanwhile.
2. Tidy what an interrupted run left: a ``*.tmp`` file, or an archive file the live journal does
   not list (a run killed after writing it and before the live journal let its rows go). Both
   are deleted: their rows are all still in the live journal, because step 5 lists a file in
   the same transaction that deletes its rows.
3. Choose what moves (gateway.store.archive_sql) and write it to ``NAME.tmp`` in one
   transaction.
4. Verify the file (SQLite's integrity check, and the row count of every table against the
   plan), fsync it, rename it to ``NAME``, fsync the directory.
5. In one transaction of the live journal (synchronous=FULL): list the archive, leave a stub per
   moved signal (its idempotency record), delete the moved rows.

So at every moment each row is in the live journal, or in a complete, verified, listed archive;
never in neither, and never in both as far as any reader knows (readers only open listed
archives). A rerun after a crash converges: step 2 undoes a half-done run, step 3 does it again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.store import archive_sql
from gateway.store.archived import LIVE_TABLES, archive_dir
from gateway.store.schema import open_journal
from gateway.store.seal import write_seal
from gateway.store.statedir import JOURNAL_FILE, StateDirError, StateDirLock

PREFIX = "journal-until-"


class ArchiveRefused(Exception):
    """Archiving cannot run here as things are (one line for the operator; exit 2)."""


@dataclass(frozen=True, slots=True)
class Archived:
    path: Path | None  # None: nothing was old enough to move
    cut: str
    counts: dict[str, int]
    archive_bytes: int
    freed_bytes: int
    vacuumed: bool
    tidied: list[str]  # leftovers of an interrupted run that were removed


def day_start(day: date, reset: time, timezone: str) -> str:
    """The UTC instant trading day ``day`` starts (``reset`` local time in ``timezone``), as
    the journal's stamps write it (ISO-8601 text, compared as text)."""
    local = datetime.combine(day, reset, tzinfo=ZoneInfo(timezone))
    return local.astimezone(UTC).isoformat()


def archive(
    state_dir: Path,
    cut: str,
    *,
    label: str,
    vacuum: bool = False,
    before_delete: Callable[[], None] | None = None,
) -> Archived:
    """Move everything older than ``cut`` that may move (see gateway.store.archive_sql) into
    ``state_dir/archive/journal-until-LABEL.sqlite``. ``before_delete`` runs between the
    archive's rename and the live delete (tests: a crash there)."""
    journal = state_dir / JOURNAL_FILE
    if not journal.exists() or journal.stat().st_size == 0:
        raise ArchiveRefused(f"no journal at {journal}: nothing to archive")
    try:
        lock = StateDirLock(state_dir).acquire()
    except StateDirError as exc:
        raise ArchiveRefused(f"{exc}: stop it before archiving") from None
    try:
        db = open_journal(journal, "power")  # integrity-checked, synchronous=FULL
        try:
            done = _run(db, journal, cut, label, vacuum, before_delete)
        finally:
            db.close()
        # Closed cleanly, as a clean stop closes it: the next start need not check it all.
        write_seal(journal)
        return done
    finally:
        lock.release()


def _run(
    db: sqlite3.Connection,
    journal: Path,
    cut: str,
    label: str,
    vacuum: bool,
    before_delete: Callable[[], None] | None,
) -> Archived:
    db.execute("PRAGMA busy_timeout=2000")
    db.executescript(LIVE_TABLES)  # idempotent; the live journal lists archives from here on
    folder = archive_dir(journal)
    tidied = _tidy(db, folder)
    before = (_size(db, journal), _free(db))
    chosen = archive_sql.select(db, cut)
    if chosen.empty:
        # --vacuum still gives back what an earlier run freed.
        freed = _shrink(db, journal, before, vacuum) if vacuum else 0
        return Archived(None, cut, chosen.counts, 0, freed, vacuum, tidied)
    folder.mkdir(parents=True, exist_ok=True)
    final = _free_name(db, folder, label)
    tmp = final.with_name(final.name + ".tmp")
    _write(db, tmp, chosen)
    _verify(tmp, chosen)
    _publish(tmp, final)
    if before_delete is not None:
        before_delete()
    _let_go(db, final.name, chosen)
    freed = _shrink(db, journal, before, vacuum)
    return Archived(final, cut, chosen.counts, final.stat().st_size, freed, vacuum, tidied)


def _tidy(db: sqlite3.Connection, folder: Path) -> list[str]:
    """Delete what an interrupted run left (see the module's docstring: its rows are all still
    in the live journal)."""
    if not folder.is_dir():
        return []
    listed = {name for (name,) in db.execute("SELECT name FROM main.archives")}
    removed = []
    for path in sorted(folder.glob(f"{PREFIX}*")):
        if path.name.endswith(".tmp") or path.name not in listed:
            path.unlink()
            removed.append(path.name)
    return removed


def _free_name(db: sqlite3.Connection, folder: Path, label: str) -> Path:
    # A second run for the same day (an order that was open then is final now) gets its own.
    for n in range(1, 10_000):
        name = f"{PREFIX}{label}.sqlite" if n == 1 else f"{PREFIX}{label}.{n}.sqlite"
        taken = db.execute("SELECT 1 FROM main.archives WHERE name=?", (name,)).fetchone()
        if taken is None and not (folder / name).exists():
            return folder / name
    raise ArchiveRefused(f"too many archives named {PREFIX}{label} in {folder}")


def _write(db: sqlite3.Connection, tmp: Path, chosen: archive_sql.Selection) -> None:
    """The archive, in one transaction of its own file (attached to the live connection, which
    only reads the live journal here)."""
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    db.execute("ATTACH DATABASE ? AS arch", (str(tmp),))
    try:
        db.execute("PRAGMA arch.synchronous=FULL")
        db.execute("BEGIN")
        try:
            archive_sql.copy_into(db, "arch", chosen)
            meta = {"cutoff": chosen.cut, "last_seq": str(chosen.last_seq)}
            meta["written_at"] = datetime.now(UTC).isoformat()
            db.executemany("INSERT INTO arch.archive_meta VALUES (?,?)", list(meta.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("DETACH DATABASE arch")


def _verify(tmp: Path, chosen: archive_sql.Selection) -> None:
    check = sqlite3.connect(tmp)
    try:
        problems = [row[0] for row in check.execute("PRAGMA integrity_check(5)")]
        counts = archive_sql.count_in(check)
    finally:
        check.close()
    if problems != ["ok"] or counts != chosen.counts:
        tmp.unlink()
        raise ArchiveRefused(
            f"the archive written to {tmp} did not verify ({'; '.join(problems)}; rows "
            f"{counts} against {chosen.counts}): it was removed and the live journal is intact"
        )


def _publish(tmp: Path, final: Path) -> None:
    """The verified file on disk under its final name, the rename durable too."""
    _fsync(tmp)
    tmp.rename(final)
    _fsync(final.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _let_go(db: sqlite3.Connection, name: str, chosen: archive_sql.Selection) -> None:
    """List the archive, stub its signals and delete its rows: one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        (archive_id,) = db.execute(
            "INSERT INTO main.archives (name, cutoff, stream_first, stream_last, archived_at) "
            "VALUES (?, ?, (SELECT MIN(seq) FROM main.stream WHERE seq <= ?), "
            "(SELECT MAX(seq) FROM main.stream WHERE seq <= ?), ?) RETURNING id",
            (name, chosen.cut, chosen.last_seq, chosen.last_seq, datetime.now(UTC).isoformat()),
        ).fetchone()
        archive_sql.delete_moved(db, chosen, int(archive_id))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _size(db: sqlite3.Connection, journal: Path) -> int:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL into the file: sizes compare
    return journal.stat().st_size


def _free(db: sqlite3.Connection) -> int:
    """Bytes of free pages inside the journal file."""
    pages = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages) * int(db.execute("PRAGMA page_size").fetchone()[0])


def _shrink(db: sqlite3.Connection, journal: Path, before: tuple[int, int], vacuum: bool) -> int:
    """Bytes the live journal freed: given back to the disk with ``vacuum``, else pages freed
    inside the file, which new rows reuse before the file grows again."""
    size_before, free_before = before
    if vacuum:
        db.execute("VACUUM")
        return max(size_before - _size(db, journal), 0)
    _size(db, journal)
    return max(_free(db) - free_before, 0)
