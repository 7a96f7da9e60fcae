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
import time
from collections.abc import Callable

__all__ = ["LoopLagProbe", "settle_heap"]


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


def settle_heap() -> None:
    """After the start: collect once, then move everything alive (modules, config, what the
    journal restored) to the permanent generation, so a full collection during trading walks
    only what trading made, not the whole start-up heap. Measured under load (bench/http.py):
    a full collection went from ~100,000 objects and up to 65 ms of CPU on the loop to ~27,000
    objects; the young generations' thresholds stay Python's (raising them made the middle
    generation's pauses longer, not shorter)."""
    gc.collect()
    gc.freeze()
