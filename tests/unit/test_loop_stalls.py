"""The loop-lag probe sees a stall, and background logging writes the lines it would have."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

from gateway.ops.logs import background_logging, configure_logging
from gateway.ops.looplag import LoopLagProbe


async def test_the_probe_reports_a_blocked_loop_as_lag() -> None:
    seen: list[float] = []
    probe = LoopLagProbe(seen.append, tick_s=0.005, report_s=0.05)
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(0.06)
    time.sleep(0.08)  # noqa: ASYNC251 (the stall under test: a blocking call on the loop)
    await asyncio.sleep(0.12)
    task.cancel()
    assert max(seen) >= 0.07
    assert probe.worst >= 0.07


def test_background_logging_writes_the_same_redacted_lines_and_flushes_on_exit() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging(stream=out, json=True, secrets=["sekrit-token-value"])
    log = logging.getLogger("gateway.test")
    try:
        with background_logging():
            log.info("decided %s", "sekrit-token-value", extra={"signal_id": "s-1"})
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert lines[0]["message"] == "decided ***"
        assert lines[0]["signal_id"] == "s-1"
        assert "ValueError: boom" in lines[1]["exc_info"]
        names = [h.get_name() for h in logging.getLogger().handlers]
        assert names.count("gateway") == 1  # the direct handler is back
    finally:
        for handler in list(root.handlers):
            if handler.get_name() == "gateway":
                root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
