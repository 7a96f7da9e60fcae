"""A flood of distinct signals from 16 concurrent HTTP clients to a real ``gateway serve`` on the
simulated broker (its account in its own state file, so it plays the broker that kept running),
killed with kill -9 mid-flood at a seeded moment, then restarted on the same state dir.

Guarantees pinned (Persistence; Contract details; Durability contract details (v2)):
- every signal a client got an answer for has exactly that decision in the journal, and sending
  it again after the restart answers the identical JSON with ``Idempotent-Replayed: true``;
- no order at the broker without its intent in the journal (the intent is written first);
- the broker (in the same process) kept every order it acknowledged, and its books add up;
- no client_order_id submitted twice, no signal with two orders, even when every signal (those
  lost in flight included) is sent again after the restart, and when the 16 clients race each
  other with the same signal_ids (every answer for an id the same JSON, one decider);
- the broker's positions equal what the journal's orders record as filled;
- the same with a slow broker that loses submit answers (orders of unknown fate at the kill);
- every fill an order records is in the journal's fills (GET /v1/fills and the stream's fill
  events), so the fills a strategy follows add up to the broker's position (a kill -9 between a
  filled submit's answer and its fill event lost the fill row: the restart now asks the broker
  for the executions it is missing, gateway/pipeline/fill_recovery.py).

A group commit that answers before its batch is durable, a batched broker write that reaches
the broker before the intent commits, or a replay that re-decides, fails here."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e import attack_flood as af
from tests.e2e.process import GatewayProcess

SEED = 20261201


def _flood_kill_restart(
    tmp_path: Path, kill_after: int, faults: dict[str, int] | None = None, shared: bool = False
) -> tuple[GatewayProcess, af.Flood]:
    """Flood, kill -9 after ``kill_after`` (+ a seeded jitter) answers, restart, wait for the
    orders of unknown fate to settle. Returns the restarted gateway (running) and the flood."""
    moment = kill_after + random.Random(SEED + kill_after).randrange(0, 16)
    gw = GatewayProcess(tmp_path, risk=af.RISK).start()
    if faults:  # a slow broker that loses some answers: more orders in flight at the kill
        drill = httpx.post(f"{gw.url}/v1/sim/faults", json=faults, headers=af.ADMIN)
        assert drill.status_code == 200, drill.text
    assert gw.proc is not None
    flood = af.Flood(gw.url, per_client=25, shared=shared, kill_at=(gw.proc.pid, moment))
    flood.start()  # 400 posts in all; the client given answer number `moment` kills
    try:
        flood.wait_answered(moment)
    finally:
        gw.kill()  # SIGKILL while the 16 clients are still sending
        flood.stop.set()
    flood.join()
    assert flood.answered() >= moment
    assert flood.answered() < flood.clients * flood.per_client, "the kill came after the end"
    assert {a.status for _, a in flood.every_answer} == {200}
    # What the clients were told is on disk, before any recovery could rewrite it.
    af.assert_answers_are_journaled(gw.state_dir, flood.answers)
    af.assert_broker_kept_what_it_acknowledged(gw.state_dir, gw.state_dir / "sim_broker.sqlite3")
    again = GatewayProcess(tmp_path, risk=af.RISK, port=gw.port).start()
    af.wait_until(lambda: af.settled(again.url), "orders of unknown fate settled")
    return again, flood


@pytest.mark.parametrize(
    ("kill_after", "faults"),
    [
        (50, None),
        (150, None),
        (260, None),
        (100, {"latency_ms": 10, "lose_submit_answers": 6}),
    ],
)
def test_kill_9_mid_flood_keeps_every_answer_and_no_order_without_intent(
    tmp_path: Path, kill_after: int, faults: dict[str, int] | None
) -> None:
    again, flood = _flood_kill_restart(tmp_path, kill_after, faults)
    sim = again.state_dir / "sim_broker.sqlite3"
    try:
        af.assert_answers_are_journaled(again.state_dir, flood.answers)
        af.assert_replays_identical(again.url, flood)
        af.wait_until(lambda: af.settled(again.url), "orders of unknown fate settled")
        af.assert_journal_and_broker_agree(again.state_dir, sim)
        af.assert_broker_kept_what_it_acknowledged(again.state_dir, sim)
    finally:
        again.kill()


def test_kill_9_while_16_clients_race_the_same_signals(tmp_path: Path) -> None:
    """The 16 clients send the same 25 signals in the same order, racing each other, and the
    process is killed mid-way: every answer for one signal_id is the same JSON (one decided,
    the rest marked replays), which the journal holds and a replay after the restart gives;
    one order per signal at most."""
    again, flood = _flood_kill_restart(tmp_path, 150, shared=True)
    sim = again.state_dir / "sim_broker.sqlite3"
    try:
        texts: dict[str, set[str]] = {}
        deciders: dict[str, int] = {}
        for signal_id, answer in flood.every_answer:
            texts.setdefault(signal_id, set()).add(answer.text)
            deciders[signal_id] = deciders.get(signal_id, 0) + (answer.replayed != "true")
        assert {s: t for s, t in texts.items() if len(t) > 1} == {}
        assert {s: n for s, n in deciders.items() if n > 1} == {}, "answers not marked replays"
        af.assert_answers_are_journaled(again.state_dir, flood.answers)
        af.assert_replays_identical(again.url, flood)
        af.wait_until(lambda: af.settled(again.url), "orders of unknown fate settled")
        af.assert_journal_and_broker_agree(again.state_dir, sim)
        af.assert_broker_kept_what_it_acknowledged(again.state_dir, sim)
    finally:
        again.kill()


def test_kill_9_mid_flood_every_recorded_fill_is_in_the_journals_fills(tmp_path: Path) -> None:
    again, _ = _flood_kill_restart(tmp_path, 50)
    sim = again.state_dir / "sim_broker.sqlite3"
    try:
        af.wait_until(
            lambda: not af.orders_missing_fills(again.state_dir),
            "every filled order's fills journaled",
            10,
        )
    except AssertionError:
        pass
    finally:
        again.kill()
    missing = af.orders_missing_fills(again.state_dir)
    assert missing == {}, f"orders whose fills are not journaled (filled, fills): {missing}"
    assert af.journaled_fills(again.state_dir) == af.broker_positions(sim)


def test_kill_9_the_instant_a_lone_answer_arrives_keeps_it(tmp_path: Path) -> None:
    """After a flood, on a quiet gateway, one signal at a time, and kill -9 the instant its
    answer arrives: no later write can carry its commit along (as one does under a flood), so
    an answer given before its group commit is durable is caught here every time."""
    gw = GatewayProcess(tmp_path, risk=af.RISK).start()
    sim = gw.state_dir / "sim_broker.sqlite3"
    try:
        af.Flood(gw.url, per_client=4).start().join()
        lone = [
            af.body(0, 100),  # market
            af.body(1, 103),  # a resting limit
            {**af.body(2, 100), "signal_id": "lone-slow"},  # through a slow broker
        ]
        answers = {}
        for n, body in enumerate(lone):
            if n:
                gw.start()
            if body["signal_id"] == "lone-slow":
                drill = httpx.post(
                    f"{gw.url}/v1/sim/faults", json={"latency_ms": 30}, headers=af.ADMIN
                )
                assert drill.status_code == 200
            assert gw.proc is not None
            with httpx.Client(base_url=gw.url, headers=af.HEADERS, timeout=30) as client:
                answer = client.post("/v1/signals", json=body)
                gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(timeout=10)
            assert answer.status_code == 200, answer.text
            answers[body["signal_id"]] = answer.text
            af.assert_answers_are_journaled(
                gw.state_dir, {s: af.Answer(200, t, None) for s, t in answers.items()}
            )
        gw.start()
        with httpx.Client(base_url=gw.url, headers=af.HEADERS, timeout=30) as client:
            for body in lone:
                again = client.post("/v1/signals", json=body)
                assert again.text == answers[body["signal_id"]]
                assert again.headers.get("Idempotent-Replayed") == "true"
        af.wait_until(lambda: af.settled(gw.url), "orders of unknown fate settled")
        af.assert_journal_and_broker_agree(gw.state_dir, sim)
        af.assert_broker_kept_what_it_acknowledged(gw.state_dir, sim)
    finally:
        gw.kill()
