"""The gateway as a real process: HTTP signals, CLI commands, restart with the halt kept."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.client import GatewayClient
from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess


def test_signal_end_to_end_then_halt_kill_resume_and_restart(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, risk={"emergency": {"resume_cooldown_s": 600}})
    with gw:
        with GatewayClient(gw.url, STRATEGY_TOKEN) as client:
            decision = client.submit("e2e-1", "momentum", "AAPL", "buy", 10)
            assert decision.decision == "accepted"
            assert decision.order is not None and float(decision.order.price) == 200.05
            stale = client.submit("e2e-2", "momentum", "NOPE", "buy", 1)
            assert [r.code for r in stale.reasons] == ["quote_missing"]
            big = client.submit("e2e-3", "momentum", "AAPL", "buy", 5000)
            assert big.decision == "rejected"
            resting = client.submit(
                "e2e-4", "momentum", "AAPL", "buy", 1, order_type="limit", limit_price=190
            )
            assert resting.order is not None and resting.order.status == "accepted"
            status = client.status()
            assert status["state"] == "active"
            assert status["orders"]["open"] == 1

        status = gw.cli("status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["broker"]["connected"] is True

        kill = gw.cli("kill", "e2e", "drill")
        assert kill.returncode == 0, kill.stderr
        report = json.loads(kill.stdout)
        assert report["cancelled"] == 1 and report["failed"] == []

        refused = gw.cli("resume", env={"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN})
        assert refused.returncode == 1
        assert "cooldown_active" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        assert gw.terminate() == 0

    again = GatewayProcess(tmp_path, port=gw.port)
    with again:
        with GatewayClient(again.url, STRATEGY_TOKEN) as client:
            halt = client.status()["halt"]
            assert halt["reason"] == "e2e drill"
            assert halt["kill_switch"] is True
            blocked = client.submit("e2e-5", "momentum", "AAPL", "buy", 1)
            assert blocked.decision == "blocked"
            # A replayed signal answers the first decision, across the restart.
            replay = client.submit("e2e-1", "momentum", "AAPL", "buy", 10)
            assert replay.decision == "accepted"
        forced = again.cli("resume", "--force", "--auth-code", "resume-code-for-tests")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["state"] == "active"
