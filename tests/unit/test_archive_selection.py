"""What ``gateway archive`` chooses, on rows laid out as the pipeline leaves them: a bracket
moves whole or not at all, a replace's signal stays with its order, a late fill keeps its order
live, the last journal event of each kind stays, the stream moves as a prefix of ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.archive import archive, day_start
from gateway.store.journal import Journal

OLD, CUT, NEW = (
    "2026-01-02T15:00:00+00:00",
    "2026-01-05T14:25:00+00:00",
    "2026-01-06T15:00:00+00:00",
)


def _signal(db: sqlite3.Connection, sid: str, coid: str | None, decided: str | None) -> None:
    db.execute(
        "INSERT INTO signals (signal_id, body_hash, body, strategy, symbol, client_order_id, "
        "decision, outcome, received_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (sid, f"h-{sid}", "{}", "m", "AAPL", coid, decided and f'{{"s":"{sid}"}}', None, OLD,
         decided),
    )  # fmt: skip


def _order(
    db: sqlite3.Connection,
    coid: str,
    sid: str,
    status: str,
    parent: str | None = None,
    at: str = OLD,
) -> None:
    db.execute(
        "INSERT INTO orders (client_order_id, signal_id, symbol, side, quantity, order_type, "
        "time_in_force, status, created_at, updated_at, strategy, parent_id) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (coid, sid, "AAPL", "buy", "1", "market", "day", status, OLD, at, "m", parent),
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    Journal(tmp_path / "journal.sqlite3").close()
    db = sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None)
    _signal(db, "plain", "o-plain", OLD)
    _order(db, "o-plain", "plain", "filled")
    # A bracket whose legs are all final moves whole; one with a leg resting stays whole.
    _signal(db, "done-br", "o-done", OLD)
    for coid, parent, status in (("o-done", None, "filled"), ("o-done-sl", "o-done", "filled"),
                                 ("o-done-tp", "o-done", "canceled")):  # fmt: skip
        _order(db, coid, "done-br", status, parent)
    _signal(db, "open-br", "o-open", OLD)
    for coid, parent, status in (("o-open", None, "filled"), ("o-open-sl", "o-open", "accepted"),
                                 ("o-open-tp", "o-open", "canceled")):  # fmt: skip
        _order(db, coid, "open-br", status, parent)
    # A replace (its own signal_id naming the order) of an order that is still open.
    _signal(db, "rest", "o-rest", OLD)
    _order(db, "o-rest", "rest", "accepted")
    _signal(db, "rest-move", "o-rest", OLD)
    # Final and old, but a fill came after the cut (the journal learnt it late).
    _signal(db, "late", "o-late", OLD)
    _order(db, "o-late", "late", "filled")
    db.execute(
        "INSERT INTO fills (client_order_id, fill_id, symbol, side, quantity, price, at) "
        "VALUES ('o-late', 'f', 'AAPL', 'buy', '1', '1', ?)",
        (NEW,),
    )
    _signal(db, "refused", None, OLD)
    _signal(db, "undecided", None, None)
    _signal(db, "newer", None, NEW)
    for kind, at in (("halt.halt", OLD), ("halt.resume", OLD), ("halt.halt", OLD), ("x", NEW)):
        db.execute("INSERT INTO events (kind, payload, at) VALUES (?, '{}', ?)", (kind, at))
    for at in (OLD, OLD, NEW, OLD):  # an old stamp after a new one: the prefix stops before
        db.execute("INSERT INTO stream (type, strategy, payload, at) VALUES ('state', NULL, '{}', ?)", (at,))  # fmt: skip
    db.close()
    return tmp_path


def _ids(path: Path, sql: str) -> set[object]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute(sql)}
    finally:
        db.close()


def test_what_is_chosen(state: Path) -> None:
    done = archive(state, CUT, label="2026-01-05")
    assert done.path is not None
    moved = _ids(done.path, "SELECT signal_id FROM signals")
    assert moved == {"plain", "done-br", "refused"}
    assert _ids(done.path, "SELECT client_order_id FROM orders") == {
        "o-plain", "o-done", "o-done-sl", "o-done-tp"
    }  # fmt: skip
    live = state / "journal.sqlite3"
    assert _ids(live, "SELECT signal_id FROM signals") == {
        "open-br", "rest", "rest-move", "late", "undecided", "newer"
    }  # fmt: skip
    assert _ids(done.path, "SELECT seq FROM stream") == {1, 2}
    assert _ids(live, "SELECT seq FROM stream") == {3, 4}
    # The open halt (the last halt-kind event) and the last resume stay: the start reads them.
    assert _ids(done.path, "SELECT id FROM events") == {1}
    assert _ids(live, "SELECT id FROM events") == {2, 3, 4}
    assert _ids(live, "SELECT signal_id FROM archived_signals") == moved


def test_a_day_starts_at_the_reset_in_the_configured_zone() -> None:
    from datetime import date, time

    assert day_start(date(2026, 1, 5), time(9, 25), "America/New_York") == CUT
    assert day_start(date(2026, 7, 6), time(0, 0), "UTC") == "2026-07-06T00:00:00+00:00"


def test_a_run_killed_while_writing_leaves_only_what_the_next_run_removes(state: Path) -> None:
    folder = state / "archive"
    folder.mkdir()
    # What a kill -9 in the middle of the write leaves: the half file and its rollback journal.
    half = ["journal-until-2026-01-05.sqlite.tmp", "journal-until-2026-01-05.sqlite.tmp-journal"]
    for name in half:
        (folder / name).write_bytes(b"half")
    done = archive(state, CUT, label="2026-01-05")
    assert sorted(done.tidied) == half
    assert sorted(p.name for p in folder.iterdir()) == ["journal-until-2026-01-05.sqlite"]
    assert done.counts["signals"] == 3
    # A later run for the same day names its own file; the listed one is kept.
    later = archive(state, "2026-01-07T00:00:00+00:00", label="2026-01-05")
    assert later.path is not None and later.path.name == "journal-until-2026-01-05.2.sqlite"
    assert (folder / "journal-until-2026-01-05.sqlite").exists() and not later.tidied
