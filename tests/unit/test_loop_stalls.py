"""The loop-lag probe sees a stall, and background logging writes the lines it would have."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import sys
import time

from gateway.ops.logs import _BatchWriter, background_logging, configure_logging
from gateway.ops.looplag import HeapKeeper, LoopLagProbe


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


def test_the_heap_keeper_freezes_what_survives_a_full_collection() -> None:
    keeper = HeapKeeper(reclaim_growth=1000.0)
    keeper.settle()
    try:
        kept = [[n] for n in range(5000)]  # long-lived objects made after the start
        frozen = gc.get_freeze_count()
        gc.collect()  # a full collection: its survivors join the permanent generation
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        keeper.close()
        gc.unfreeze()


def test_the_heap_keeper_walks_everything_again_once_the_heap_has_grown() -> None:
    keeper = HeapKeeper(reclaim_growth=1.01)
    keeper.settle()
    try:
        a: list[object] = []
        a.append(a)  # a cycle, frozen while alive
        gc.collect()
        del a  # garbage now, but frozen: no full collection frees it
        grown = [object() for _ in range(sys.getallocatedblocks() // 10)]
        collected: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                collected.append(info["collected"])

        gc.callbacks.append(count)
        keeper.tick()  # grown past the factor: unfreeze, collect all, freeze again
        gc.callbacks.remove(count)
        assert sum(collected) >= 1
        assert grown
    finally:
        keeper.close()
        gc.unfreeze()


def test_the_log_writer_wakes_for_a_warning_without_waiting_for_its_batch() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    writer = _BatchWriter(handler, interval_s=30.0)  # a batch would come only in 30 s
    writer.start()
    try:
        writer.put_nowait(logging.makeLogRecord({"msg": "routine", "levelno": logging.INFO}))
        writer.put_nowait(logging.makeLogRecord({"msg": "look", "levelno": logging.WARNING}))
        deadline = time.monotonic() + 10
        while "look" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert out.getvalue().splitlines() == ["routine", "look"]  # in order, at once
    finally:
        writer.stop()
