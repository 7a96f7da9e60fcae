"""A token bucket for ``pre_trade.max_orders_per_second`` (whole-gateway order rate): it holds
at most one second's worth of orders, so an idle gateway admits a burst of that many at once."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._rate = rate_per_s
        self._tokens = rate_per_s
        self._clock = clock
        self._last = clock()

    def try_take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
