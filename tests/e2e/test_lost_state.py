"""Lost or damaged state is never a fresh start, and one gateway holds a state dir at a time.

Each test runs real `gateway serve` processes on one state dir and deletes, empties or damages
its files between them, as an operator's mistake or a failing disk would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _buy(url: str, signal_id: str, quantity: int = 10) -> httpx.Response:
    body = {
        "signal_id": signal_id,
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": quantity,
    }
    return httpx.post(f"{url}/v1/signals", json=body, headers=HEADERS, timeout=10)


def _ran_once(tmp_path: Path) -> GatewayProcess:
    gw = GatewayProcess(tmp_path).start()
    try:
        assert _buy(gw.url, "first").json()["decision"] == "accepted"
    finally:
        assert gw.terminate() == 0
    return gw


def test_a_deleted_journal_refuses_to_start_as_if_fresh(tmp_path: Path) -> None:
    gw = _ran_once(tmp_path)
    journal = gw.state_dir / "journal.sqlite3"
    journal.unlink()
    refused = gw.serve_refused()
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(journal) in lines[0] and "--new-journal" in lines[0]
    assert not journal.exists()  # refused before touching anything


def test_an_emptied_journal_refuses_to_start(tmp_path: Path) -> None:
    gw = _ran_once(tmp_path)
    (gw.state_dir / "journal.sqlite3").write_bytes(b"")
    refused = gw.serve_refused()
    assert refused.returncode == 2 and "empty" in refused.stderr


def test_new_journal_starts_deliberately_and_keeps_the_old_one(tmp_path: Path) -> None:
    gw = _ran_once(tmp_path)
    (gw.state_dir / "journal.sqlite3").write_bytes(b"")
    again = GatewayProcess(tmp_path, port=gw.port)
    again.start(30.0, "--new-journal")
    try:
        status = httpx.get(f"{again.url}/v1/status", headers=HEADERS).json()
        assert status["state"] == "active"
    finally:
        again.terminate()
    assert list(gw.state_dir.glob("journal.sqlite3.replaced-*"))


def test_a_deleted_halt_state_starts_halted_when_the_journal_records_a_halt(
    tmp_path: Path,
) -> None:
    gw = GatewayProcess(tmp_path).start()
    try:
        httpx.post(f"{gw.url}/v1/halt", json={"reason": "news"}, headers=HEADERS)
    finally:
        gw.terminate()
    (gw.state_dir / "halt_state.json").unlink()
    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        status = httpx.get(f"{again.url}/v1/status", headers=HEADERS).json()
        assert status["state"] == "halted"
        assert status["halt"]["trigger"] == "state_unreadable"
        assert "news" in status["halt"]["reason"]
        assert _buy(again.url, "after").json()["decision"] == "blocked"
    finally:
        again.terminate()


def test_a_deleted_halt_state_with_no_halt_in_the_journal_is_written_anew(tmp_path: Path) -> None:
    gw = _ran_once(tmp_path)
    (gw.state_dir / "halt_state.json").unlink()
    again = GatewayProcess(tmp_path, port=gw.port).start()
    try:
        status = httpx.get(f"{again.url}/v1/status", headers=HEADERS).json()
        assert status["state"] == "active"
        assert (gw.state_dir / "halt_state.json").exists()
        # Its memory is intact: the first signal replays, it is not bought again.
        replay = _buy(again.url, "first")
        assert replay.headers.get("Idempotent-Replayed") == "true"
    finally:
        again.terminate()


def test_garbage_in_a_middle_page_refuses_to_start(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()
    try:
        for n in range(150):
            _buy(gw.url, f"s-{n}", quantity=1)
    finally:
        gw.terminate()
    path = gw.state_dir / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 4
    data = bytearray(path.read_bytes())
    middle = (pages // 2) * page
    data[middle : middle + 512] = b"\x5a" * 512
    path.write_bytes(bytes(data))
    refused = gw.serve_refused()
    assert refused.returncode == 2, refused.stderr
    assert "integrity check" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.strip()]) == 1


def test_a_second_gateway_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path).start()
    try:
        second = GatewayProcess(tmp_path)  # another port, the same state dir
        refused = second.serve_refused()
        assert refused.returncode == 2
        line = refused.stderr.strip()
        assert str(gw.state_dir) in line and f"pid {gw.proc.pid}" in line  # type: ignore[union-attr]
        # The first one is untouched and still trading.
        assert _buy(gw.url, "still-mine").json()["decision"] == "accepted"
    finally:
        gw.kill()
    # kill -9 leaves no stale lock: the kernel released it with the process.
    third = GatewayProcess(tmp_path, port=gw.port).start()
    third.terminate()
