"""A pair's event stream is its journal's, in PostgreSQL: after the standby takes over, a
client that resumes from the start gets every decision the deposed active made, in order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import signal
from tests.firm.conftest import STRATEGY
from tests.firm.pair import member, start_standby, wait_ready

pytestmark = pytest.mark.timeout(180)


def decisions_from_the_start(url: str, want: int, timeout_s: float = 20.0) -> list[str]:
    """The signal_ids of the first ``want`` decision events of GET /v1/events?after=0."""
    seen: list[str] = []
    ids: list[int] = []
    deadline = time.monotonic() + timeout_s
    with httpx.Client(headers=STRATEGY, timeout=timeout_s) as client:
        with client.stream("GET", f"{url}/v1/events", params={"after": 0}) as answer:
            assert answer.status_code == 200
            event = None
            for line in answer.iter_lines():
                assert time.monotonic() < deadline, f"only {seen} after {timeout_s}s"
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "decision":
                    seen.append(json.loads(line[6:])["signal_id"])
                    if len(seen) == want:
                        break
    assert ids == sorted(set(ids))  # strictly increasing: the journal's seq
    return seen


def test_the_stream_reads_the_pairs_journal_across_a_takeover(
    tmp_path: Path, firm_dsn: str
) -> None:
    sim = tmp_path / "sim.sqlite3"
    active = member(tmp_path, firm_dsn, "a", sim).start()
    standby = start_standby(member(tmp_path, firm_dsn, "b", sim))
    try:
        with httpx.Client(headers=STRATEGY, timeout=10) as client:
            for n in range(3):
                sent = client.post(f"{active.url}/v1/signals", json=signal(f"pe-{n}"))
                assert sent.status_code == 200, sent.text
        assert decisions_from_the_start(active.url, 3) == ["pe-0", "pe-1", "pe-2"]
        active.kill()
        wait_ready(standby, 15)
        with httpx.Client(headers=STRATEGY, timeout=10) as client:
            sent = client.post(f"{standby.url}/v1/signals", json=signal("pe-3"))
            assert sent.status_code == 200, sent.text
        assert decisions_from_the_start(standby.url, 4) == ["pe-0", "pe-1", "pe-2", "pe-3"]
    finally:
        standby.kill()
        active.kill()
