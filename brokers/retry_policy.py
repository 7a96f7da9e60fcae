"""The retry policy of ``brokers.retrying``: how hard it tries, what it tries again, and how long
it waits between attempts (its module docstring states what these bound)."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, wait_random, wait_random_exponential

from brokers.errors import AnswerUnknown, BrokerUnavailable, NotSent, RateLimited


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard ``RetryingBroker`` tries; the module docstring states what these bound."""

    attempts: int = 4
    initial_wait_s: float = 0.25
    max_wait_s: float = 2.0
    max_rate_limit_wait_s: float = 10.0
    call_timeout_s: float | None = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts: must be at least 1, not {self.attempts}")
        for name in ("initial_wait_s", "max_wait_s", "max_rate_limit_wait_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must not be negative, not {getattr(self, name)}")
        if self.call_timeout_s is not None and not self.call_timeout_s > 0:
            raise ValueError(f"call_timeout_s: must be greater than 0, not {self.call_timeout_s}")

    def max_backoff_s(self, failure: int) -> float:
        """The longest wait after the ``failure``-th failed attempt (not a rate limit)."""
        return min(self.max_wait_s, self.initial_wait_s * 2.0 ** (failure - 1))

    def max_total_wait_s(self, *, rate_limited: bool = False) -> float:
        """The longest the waits of one call can add up to (the module docstring's figure)."""
        rate_limit_wait = self.max_rate_limit_wait_s + self.initial_wait_s if rate_limited else 0
        return sum(max(self.max_backoff_s(n), rate_limit_wait) for n in range(1, self.attempts))

    def retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, BrokerUnavailable) or isinstance(exc, AnswerUnknown):
            return False
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return exc.retry_after_s <= self.max_rate_limit_wait_s
        return True


def may_have_landed(exc: BaseException) -> bool:
    """True for a failure after which a submit may have reached the broker anyway."""
    return isinstance(exc, BrokerUnavailable) and not isinstance(exc, RateLimited | NotSent)


class RetryWait:
    """tenacity wait: jittered exponential backoff, or a rate limit's retry-after plus jitter."""

    def __init__(self, policy: RetryPolicy):
        self._backoff = wait_random_exponential(
            multiplier=policy.initial_wait_s, max=policy.max_wait_s
        )
        self._jitter = wait_random(0, policy.initial_wait_s)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return max(0.0, exc.retry_after_s) + float(self._jitter(state))
        return float(self._backoff(state))
