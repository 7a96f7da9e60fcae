"""The event loop's lag: how late the loop wakes a task that asked to sleep.

Everything the gateway does shares one loop (requests, the pipeline, broker streams, the kill
switch), so anything that holds it (a garbage collection of a large heap, a synchronous write,
a long computation) delays every request at once: a p99 far above the median. The probe sleeps
``tick_s`` again and again and measures how much later than asked it woke; the worst of each
``report_s`` window goes to ``observe`` (``gateway_event_loop_lag_seconds``). It costs one timer
per tick, nothing per request.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable

__all__ = ["HeapKeeper", "LoopLagProbe"]


class LoopLagProbe:
    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        tick_s: float = 0.02,
        report_s: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._observe = observe
        self._tick = tick_s
        self._report = report_s
        self._clock = clock
        self.worst = 0.0  # the worst lag seen since the probe started, in seconds

    async def run(self) -> None:
        clock, tick = self._clock, self._tick
        window_worst = 0.0
        window_end = clock() + self._report
        while True:
            asked = clock()
            await asyncio.sleep(tick)
            now = clock()
            lag = max(0.0, now - asked - tick)
            if lag > window_worst:
                window_worst = lag
                self.worst = max(self.worst, lag)
            if now >= window_end:
                self._observe(window_worst)
                window_worst = 0.0
                window_end = now + self._report


class HeapKeeper:
    """Keeps full garbage collections short while the gateway trades.

    After the start it collects once and moves everything alive (modules, config, what the
    journal restored) to the permanent generation. Python's own rule then runs a full
    collection whenever the old generation has grown by a quarter, and each walks all of it:
    under bench/http.py (orders and their books kept for the day) the old generation reached
    ~90,000 objects and the full collections took 20-140 ms each, eleven of them in 30 s, every
    one a stall of every request (the p99 and the loop-lag max). So the survivors of each full
    collection are frozen too (a callback at its end, when the young generations are empty):
    the next one walks only what was promoted since, a few thousand objects.

    The price of freezing: a reference cycle among frozen objects is not collected while they
    are frozen. So once the heap has grown ``reclaim_growth`` times since the last time
    everything was walked, :meth:`run` unfreezes, collects the whole heap once and freezes again:
    such garbage stays bounded by that factor, and the one long walk comes that much less often
    than Python's (at each fourfold growth instead of each quarter: under bench/http.py a
    doubling still came within the run, one ~110 ms walk, the worst request of the run). The
    heap's size is read as ``sys.getallocatedblocks()`` (under a microsecond):
    ``gc.get_freeze_count()`` walks the whole frozen list, milliseconds on the loop at every
    check."""

    def __init__(self, *, reclaim_growth: float = 4.0, check_s: float = 1.0) -> None:
        self._growth = reclaim_growth
        self._check = check_s
        self._walked = 0  # the heap's blocks after the last collection of everything
        self._installed = False

    def settle(self) -> None:
        """Collect once, freeze what is alive, and freeze after each full collection from now."""
        self._reclaim()
        if not self._installed:
            gc.callbacks.append(self._after_collection)
            self._installed = True

    def close(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._after_collection)
            self._installed = False

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        # Called with the GIL, from whatever thread allocated; freezing only moves lists.
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    def _reclaim(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._walked = sys.getallocatedblocks()

    def tick(self) -> None:
        """The one long walk, when the frozen heap has grown enough since the last."""
        if sys.getallocatedblocks() > self._walked * self._growth:
            self._reclaim()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._check)
            self.tick()
