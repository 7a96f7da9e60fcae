"""A strategy follows GET /v1/events of a real ``gateway serve`` from ``after=0`` while 16
concurrent clients flood it with signals, and through a kill -9 mid-flood and a restart (the
follower reconnects with Last-Event-ID by itself).

Guarantees pinned (Event stream: ids are the journal's sequence numbers, strictly increasing; a
client that reconnects with Last-Event-ID gets every event after N exactly once, in order, none
missing, across a restart of the gateway too):
- the journal's stream table is seq 1..N without gaps, and the stream sent each seq exactly
  once, in order, with the journal's type and payload (group commits and batched writes must not
  reorder, skip, double or publish an event before it is committed);
- every decision a client was answered is a decision event with the answer's content;
- the same after a kill -9 mid-flood and a restart."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e import attack_flood as af
from tests.e2e.process import GatewayProcess


def _caught_up(stream: af.RawStream, gw: GatewayProcess) -> None:
    (last,) = af.journal(gw.state_dir, "SELECT coalesce(max(seq), 0) FROM stream")[0]
    stream.wait_for(last)
    time.sleep(0.5)  # a double or a late extra would arrive now; the checks then read state


def test_every_event_once_in_order_under_a_flood_and_across_kill_9(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, risk=af.RISK).start()
    stream = af.RawStream(gw.url, after=0).start()
    try:
        # A flood that runs to its end: 16 clients, 208 signals.
        flood = af.Flood(gw.url, per_client=13).start()
        flood.join()
        assert len(flood.answers) == 16 * 13
        assert {a.status for a in flood.answers.values()} == {200}
        af.wait_until(lambda: af.settled(gw.url), "orders settled")
        _caught_up(stream, gw)
        af.assert_stream_matches_journal(stream.seen(), gw.state_dir)
        af.assert_decisions_streamed(stream.seen(), flood.answers)

        # Another flood (other signal ids), killed with kill -9 in the middle.
        assert gw.proc is not None
        second = af.Flood(gw.url, per_client=25, prefix="k", kill_at=(gw.proc.pid, 97)).start()
        try:
            second.wait_answered(97)
        finally:
            gw.kill()
            second.stop.set()
        second.join()
        assert len(second.sent) > len(second.answers), "the kill came after the flood ended"
        connects = stream.connects
        gw.start()
        af.wait_until(lambda: af.settled(gw.url), "orders of unknown fate settled")
        af.wait_until(lambda: stream.connects > connects, "the follower reconnected")
        _caught_up(stream, gw)
        frames = stream.seen()
        af.assert_stream_matches_journal(frames, gw.state_dir)
        af.assert_decisions_streamed(frames, flood.answers)
        af.assert_decisions_streamed(frames, second.answers)
    finally:
        stream.close()
        gw.kill()
