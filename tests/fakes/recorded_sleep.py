"""A stand-in for ``asyncio.sleep`` that records every wait and waits for nothing: the retry
layer's waits are checked exactly, without a clock (``RetryingBroker(..., sleep=RecordedSleep())``).
"""

from __future__ import annotations

import asyncio


class RecordedSleep:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    @property
    def total(self) -> float:
        return sum(self.seconds)
