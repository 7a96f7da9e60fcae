"""Archive benchmark: the live journal's size before and after ``gateway archive``, the stub an
archived signal leaves behind, and the time it takes. Prints one JSON line.

    python bench/archive_size.py [--signals 100000] [--days 5]

The journal is built as bench/journal_growth.py builds it (per signal: its row with the body
and the exact decision JSON, its filled order, its fill, its decision event), over ``--days``
trading days; every day but the last is archived, then the live journal is vacuumed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # bench/http.py would hide the standard library's http package

import argparse
import json
import sqlite3
import tempfile
import time
from datetime import date, timedelta
from datetime import time as day_time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _table_bytes(path: Path, name: str) -> int:
    """Bytes of a table and its indexes (SQLite's dbstat)."""
    db = sqlite3.connect(path)
    try:
        return int(
            db.execute(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? OR name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = ? AND type = 'index')",
                (name, name),
            ).fetchone()[0]
        )
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()
    import journal_growth

    from gateway.store.archive import archive, day_start

    journal_growth.PER_DAY = args.signals // args.days
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        journal = state / "journal.sqlite3"
        journal_growth.build(journal, args.signals)
        before = journal.stat().st_size
        # The build's days start 2026-01-01 13:30 UTC, before New York's 09:25 reset: each
        # belongs to the trading day before its date, so the last one is trading day DAYS-2
        # after 2026-01-01, and archiving before it keeps one day live.
        last = date(2026, 1, 1) + timedelta(days=args.days - 2)
        cut = day_start(last, day_time(9, 25), "America/New_York")
        started = time.perf_counter()
        done = archive(state, cut, label=last.isoformat())
        took = time.perf_counter() - started
        unvacuumed = journal.stat().st_size
        stubs = _table_bytes(journal, "archived_signals")
        vacuumed = archive(state, cut, label=last.isoformat(), vacuum=True)  # nothing moves
        moved = done.counts["signals"]
        print(
            json.dumps(
                {
                    "signals": args.signals,
                    "days": args.days,
                    "moved": done.counts,
                    "live_bytes_before": before,
                    "live_bytes_after_no_vacuum": unvacuumed,
                    "freed_inside_no_vacuum": done.freed_bytes,
                    "live_bytes_after_vacuum": journal.stat().st_size,
                    "vacuum_gave_back": vacuumed.freed_bytes,
                    "archive_bytes": done.archive_bytes,
                    "stub_bytes_per_signal": round(stubs / moved, 1) if moved else None,
                    "archive_seconds": round(took, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
