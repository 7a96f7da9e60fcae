"""A real full disk in the middle of a 16-client flood: the state dir is a small tmpfs, filled
up while the clients keep sending; then the process is killed with kill -9 before any space comes
back, the space is freed, and it is restarted.

Guarantees pinned (Durability contract details (v2): a journal write that fails halts the
gateway with journal_failure and answers the signal 503 journal_unavailable; nothing is sent to
the broker without its intent committed; Contract details: a replayed signal_id answers exactly
the JSON of the first decision):
- every answer during the flood is a 200 decision or a 503 journal_unavailable;
- the gateway is HALTED with the journal_failure trigger;
- no order at the broker without its journaled intent, none sent twice;
- every 200 was durable: after kill -9 on the full disk and a restart, every one of them is in
  the journal byte for byte and replays identically (``Idempotent-Replayed: true``); signals
  answered 503 and sent again make at most one order each."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.e2e import attack_flood as af
from tests.e2e.process import GatewayProcess
from tests.e2e.test_full_disk import _fill, tmpfs


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("fill_after", [20, 120])
def test_a_disk_filling_up_mid_flood_sends_nothing_without_intent_and_loses_no_answer(
    tmp_path: Path, fill_after: int
) -> None:
    sim = tmp_path / "sim_broker.sqlite3"
    gateway = {
        "gateway": {"schedule": {"risk_sweep_s": 0.5}},
        # The broker is another system: its account does not live on our full disk.
        "brokers": {"simulated": {"state_file": str(sim)}},
    }
    risk = {**af.RISK, "emergency": {"resume_cooldown_s": 0}}
    with tmpfs(tmp_path / "state", "16m") as state:
        gw = GatewayProcess(tmp_path, gateway=gateway, risk=risk).start()
        try:
            flood = af.Flood(gw.url, per_client=30).start()  # 480 signals
            flood.wait_answered(fill_after)
            filler = _fill(state, leave=0)
            flood.join(120)
            assert len(flood.answers) == len(flood.sent) == 16 * 30
            codes = {}
            for signal_id, answer in flood.answers.items():
                assert answer.status in (200, 503), (signal_id, answer.text)
                if answer.status == 503:
                    assert '"journal_unavailable"' in answer.text, answer.text
                codes[answer.status] = codes.get(answer.status, 0) + 1
            assert codes.get(503), f"the full disk never refused a write: {codes}"
            with httpx.Client(base_url=gw.url, headers=af.HEADERS, timeout=10) as client:
                af.wait_until(
                    lambda: client.get("/v1/status").json()["state"] == "halted", "halted"
                )
                status = client.get("/v1/status").json()
            assert status["halt"]["trigger"] == "journal_failure", status["halt"]
            assert status["journal"]["writable"] is False
            # Nothing at the broker without its intent, even with the disk still full.
            at_broker = {c for (c,) in af.broker(sim, "SELECT client_order_id FROM orders")}
            intents = {c for (c,) in af.journal(state, "SELECT client_order_id FROM orders")}
            assert at_broker <= intents, at_broker - intents
            twice = af.broker(sim, "SELECT client_order_id FROM submit_counts WHERE count > 1")
            assert twice == []
            af.assert_answers_are_journaled(state, flood.answers)
        finally:
            gw.kill()  # kill -9 with the disk still full: what was answered must be on disk
        filler.unlink()
        af.assert_answers_are_journaled(state, flood.answers)
        again = GatewayProcess(tmp_path, gateway=gateway, risk=risk, port=gw.port).start()
        try:
            af.wait_until(lambda: af.settled(again.url), "orders of unknown fate settled")
            af.assert_answers_are_journaled(state, flood.answers)
            af.assert_replays_identical(again.url, flood)
            af.wait_until(lambda: af.settled(again.url), "orders of unknown fate settled")
            af.assert_journal_and_broker_agree(state, sim)
            af.assert_broker_kept_what_it_acknowledged(state, sim)
        finally:
            again.kill()
