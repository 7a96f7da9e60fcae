"""``gateway archive --before DATE [--vacuum] [--state-dir PATH]``: the command's checks and its
one line (the work is gateway.store.archive's).

Exit 0 with one line on stdout saying what moved; 2 with one line on stderr when it cannot run
(a gateway holds the state dir, a pair's PostgreSQL journal, a day not yet over, no journal).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from gateway.config import GatewayConfig
from gateway.risk.state import trading_day
from gateway.store.archive import Archived, ArchiveRefused, archive, day_start

EXIT_OK, EXIT_USAGE = 0, 2


def _refuse(message: str) -> int:
    print(f"gateway: archive: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_archive(args: argparse.Namespace, config: GatewayConfig) -> int:
    if config.firm is not None and config.firm.account is not None:
        # Its journal is in PostgreSQL, shared by the pair: not a file this command can move.
        return _refuse(
            "not supported for an active/standby pair's journal (PostgreSQL) yet; "
            "it archives a single gateway's SQLite journal only"
        )
    schedule = config.gateway.schedule
    today = trading_day(datetime.now(UTC), schedule)
    if args.before > today:
        return _refuse(
            f"--before {args.before} is after the current trading day {today}: only days "
            "that are over can be archived"
        )
    cut = day_start(args.before, schedule.trading_day_reset, schedule.timezone)
    state_dir = args.state_dir or config.gateway.state_dir
    try:
        done = archive(state_dir, cut, label=args.before.isoformat(), vacuum=args.vacuum)
    except ArchiveRefused as exc:
        return _refuse(str(exc))
    print(summary(done, args.before.isoformat()), flush=True)
    return EXIT_OK


def summary(done: Archived, day: str) -> str:
    """The command's one line."""
    tidied = ""
    if done.tidied:
        tidied = f" (removed {', '.join(done.tidied)}, left by an interrupted run)"
    if done.path is None:
        space = (
            f"; VACUUM gave {done.freed_bytes:,} bytes back to the disk" if done.vacuumed else ""
        )
        return (
            f"archived nothing: no trading day before {day} ({done.cut}) left to move"
            f"{space}{tidied}"
        )
    c = done.counts
    space = (
        f"VACUUM gave {done.freed_bytes:,} bytes back to the disk"
        if done.vacuumed
        else f"{done.freed_bytes:,} bytes freed inside the live journal (reused by new rows; "
        "--vacuum gives them back to the disk)"
    )
    return (
        f"archived the trading days before {day} ({done.cut}): {c['signals']:,} signals, "
        f"{c['orders']:,} orders, {c['fills']:,} fills, {c['stream']:,} stream events, "
        f"{c['events']:,} journal events to {done.path} ({done.archive_bytes:,} bytes); "
        f"{space}{tidied}"
    )
