"""The journal's seal, with real ``gateway serve`` processes: a clean stop seals the journal and
the next start skips SQLite's integrity check; a start after a kill -9, without its seal, or with
another journal's seal runs the full check; a sealed journal damaged since is still refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx

from tests.conftest import STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
FULL_CHECK = "running the full integrity check"


def _buy(url: str, signal_id: str) -> httpx.Response:
    body = {"signal_id": signal_id, "strategy": "momentum", "symbol": "AAPL", "side": "buy"}
    return httpx.post(f"{url}/v1/signals", json=body | {"quantity": 1}, headers=HEADERS, timeout=10)


def _traded(directory: Path, signals: int = 3, *, clean: bool = True) -> GatewayProcess:
    gw = GatewayProcess(directory).start()
    try:
        for n in range(signals):
            assert _buy(gw.url, f"s-{n}").json()["decision"] == "accepted"
    finally:
        if clean:
            assert gw.terminate() == 0
        else:
            gw.kill()
    return gw


def _seal(gw: GatewayProcess) -> Path:
    return gw.state_dir / "journal.sqlite3.seal"


def _restarted(gw: GatewayProcess) -> tuple[bool, str]:
    """Start again on the same state dir: (whether the full check ran, the start's log)."""
    gw.log_path.write_text("")
    again = GatewayProcess(gw.log_path.parent, port=gw.port).start()
    try:
        replay = _buy(again.url, "s-0")  # the journal is the one traded on before
        assert replay.headers.get("Idempotent-Replayed") == "true"
    finally:
        assert again.terminate() == 0
    log = again.log()
    return FULL_CHECK in log, log


def test_a_clean_stop_seals_and_the_next_start_skips_the_check(tmp_path: Path) -> None:
    gw = _traded(tmp_path)
    assert _seal(gw).exists()
    full, _ = _restarted(gw)
    assert not full
    assert _seal(gw).exists()  # that clean stop sealed it again


def test_a_start_after_kill_9_runs_the_full_check(tmp_path: Path) -> None:
    gw = _traded(tmp_path, clean=False)
    assert not _seal(gw).exists()  # removed at start, never written: the stop was not clean
    full, log = _restarted(gw)
    assert full and "no seal" in log


def test_a_deleted_seal_means_the_full_check_and_a_sound_journal_starts(tmp_path: Path) -> None:
    gw = _traded(tmp_path)
    _seal(gw).unlink()
    full, _ = _restarted(gw)
    assert full


def test_another_journals_seal_does_not_vouch_for_this_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine, other = _traded(tmp_path / "a"), _traded(tmp_path / "b")
    shutil.copy(_seal(other), _seal(mine))
    full, log = _restarted(mine)
    assert full and "does not match" in log


def test_a_sealed_journal_with_a_byte_flipped_in_the_middle_refuses_to_start(
    tmp_path: Path,
) -> None:
    gw = _traded(tmp_path, signals=150)
    path = gw.state_dir / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # every page is in use
    db.close()
    assert pages > 4 and _seal(gw).exists()
    middle = (pages // 2) * page  # the first byte of a middle page: its b-tree page type
    with path.open("r+b") as out:
        out.seek(middle)
        flipped = out.read(1)[0] ^ 0xFF
        out.seek(middle)
        out.write(bytes([flipped]))
    refused = gw.serve_refused()
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "integrity check" in lines[0], refused.stderr
    assert not _seal(gw).exists()  # removed before anything else: it vouched for another file
