"""A clean stop (SIGTERM) in the middle of a 16-client flood, then a start on the same state dir
(the start a shutdown seal may let skip the integrity check), twice over.

Guarantees pinned (Persistence; Contract details: a replayed signal_id answers exactly the JSON
of the first decision; Event stream: every event once, in order, across a restart; Durability
contract details (v2)): a shutdown that seals the journal while signals are still arriving and
group commits are still open must exit 0 and leave every answer journaled byte for byte and
replayable, no order at the broker without its intent, none twice, the broker's positions what
the journal's orders filled, and the journal's stream seq 1..N without gaps."""

from __future__ import annotations

from pathlib import Path

from tests.e2e import attack_flood as af
from tests.e2e.process import GatewayProcess


def test_sigterm_mid_flood_then_restart_loses_nothing_twice_over(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, risk=af.RISK).start()
    sim = gw.state_dir / "sim_broker.sqlite3"
    floods = []
    for prefix, stop_after in (("a", 60), ("b", 170)):
        if floods:
            gw.start()
        flood = af.Flood(gw.url, per_client=20, prefix=prefix).start()
        floods.append(flood)
        try:
            flood.wait_answered(stop_after)
        finally:
            code = gw.terminate(timeout_s=60)  # SIGTERM while the 16 clients still send
            flood.stop.set()
        flood.join()
        assert code == 0, gw.log()[-3000:]
        assert len(flood.sent) > len(flood.answers), "the stop came after the flood ended"
        for answer in flood.answers.values():
            # While it stops, a signal may be refused (503) but never answered and forgotten.
            assert answer.status in (200, 503), answer.text
        af.assert_answers_are_journaled(gw.state_dir, flood.answers)
    gw.start()
    try:
        af.wait_until(lambda: af.settled(gw.url), "orders of unknown fate settled")
        stream = af.RawStream(gw.url, after=0).start()
        for flood in floods:
            af.assert_answers_are_journaled(gw.state_dir, flood.answers)
            af.assert_replays_identical(gw.url, flood)
        af.wait_until(lambda: af.settled(gw.url), "orders of unknown fate settled")
        af.assert_journal_and_broker_agree(gw.state_dir, sim)
        af.assert_broker_kept_what_it_acknowledged(gw.state_dir, sim)
        (last,) = af.journal(gw.state_dir, "SELECT max(seq) FROM stream")[0]
        stream.wait_for(last)
        stream.close()
        af.assert_stream_matches_journal(stream.seen(), gw.state_dir)
        for flood in floods:
            af.assert_decisions_streamed(stream.seen(), flood.answers)
    finally:
        gw.kill()
