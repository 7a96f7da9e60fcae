"""Reading what ``gateway archive`` moved out of the live journal (see gateway.store.archive).

The live journal keeps two small tables once something was archived:

- ``archives``: one row per complete archive file (its name under ``state_dir/archive``, the
  trading-day boundary it was cut at, and the event-stream ids it holds). A file is listed only
  by the transaction that deleted its rows from the live journal, so a listed file is complete
  and every row is in exactly one place.
- ``archived_signals``: a stub per archived signal (signal_id, body hash, archive): a replay of
  an archived signal_id is recognised with one indexed read of the live journal, and its first
  decision is read from the archive file (also by primary key).

Both are part of the schema since version 3, empty until the first archive: a gateway too old
to know them refuses the journal as newer than itself (it would take an archived signal_id for
a new one).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.store.schema import ARCHIVE_TABLES, JournalUnavailable

ARCHIVE_DIR = "archive"

LIVE_TABLES = ARCHIVE_TABLES  # in the schema since version 3 (see its migration)


def archive_dir(journal: Path) -> Path:
    return journal.parent / ARCHIVE_DIR


def open_archive(path: Path) -> sqlite3.Connection:
    """An archive file, read-only (mode=ro: a reader can never change what was verified)."""
    if not path.exists():
        # A listed archive that is gone would silently lose its rows: say so instead.
        raise JournalUnavailable(f"archive {path} is missing (moved or deleted?)")
    try:
        return sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise JournalUnavailable(f"archive {path} unreadable: {exc}") from exc


def has_archives(db: Any) -> bool:
    """True when the live journal (a sqlite3 connection or cursor source) lists archives."""
    rows = db.execute("SELECT 1 FROM archives LIMIT 1").fetchall()
    return bool(rows)


def archived_decision(db: Any, journal: Path, signal_id: str) -> tuple[str, str] | None:
    """(body hash, first decision JSON) of an archived signal, or None when it is not one."""
    rows = db.execute(
        "SELECT a.body_hash, r.name FROM archived_signals a JOIN archives r ON r.id = a.archive "
        "WHERE a.signal_id = ?",
        (signal_id,),
    ).fetchall()
    if not rows:
        return None
    body_hash, name = rows[0]
    archive = open_archive(archive_dir(journal) / name)
    try:
        found = archive.execute(
            "SELECT decision FROM signals WHERE signal_id = ?", (signal_id,)
        ).fetchall()
    except sqlite3.Error as exc:
        raise JournalUnavailable(f"archive {name} unreadable: {exc}") from exc
    finally:
        archive.close()
    if not found or found[0][0] is None:
        raise JournalUnavailable(f"archive {name} lacks the decision of signal_id {signal_id}")
    return str(body_hash), str(found[0][0])


def stream_ranges(db: Any) -> list[tuple[str, int, int]]:
    """(file name, first id, last id) of every archive holding stream events, oldest first."""
    if not db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='archives'"
    ).fetchall():
        return []
    rows = db.execute(
        "SELECT name, stream_first, stream_last FROM archives "
        "WHERE stream_last IS NOT NULL ORDER BY stream_first"
    ).fetchall()
    return [(str(name), int(first), int(last)) for name, first, last in rows]
