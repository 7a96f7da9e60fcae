"""Reconnecting ``IBBroker`` to TWS / IB Gateway after a dropped socket, on tenacity.

The first attempt comes at once (a blip heals at once); after the n-th failure the wait is
``initial_s * 2**(n-1)`` capped at ``max_s``, plus up to a fifth of ``initial_s`` of jitter, so
clients that lost TWS together do not come back together. It goes on until a connect works or
the adapter closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from brokers.errors import BrokerError

log = logging.getLogger("brokers.ib.broker")


def reconnect_wait(initial_s: float, max_s: float) -> wait_base:
    """tenacity's wait after the n-th failed reconnect (see the module docstring)."""
    return wait_exponential(multiplier=initial_s, max=max_s) + wait_random(0, initial_s / 5)


def _log_failure(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    if isinstance(exc, BrokerError):
        log.warning("IB reconnect attempt %d failed (next in %.2fs): %s",
                    state.attempt_number, wait, exc)  # fmt: skip
    else:  # keep trying, but never silently
        log.error("IB reconnect attempt %d failed unexpectedly (next in %.2fs)",
                  state.attempt_number, wait, exc_info=exc)  # fmt: skip


async def reconnect(
    connect: Callable[[], Awaitable[None]],
    *,
    closing: Callable[[], bool],
    initial_s: float,
    max_s: float,
) -> None:
    """``connect()`` until it works or ``closing()`` says the adapter is closing."""
    retrying = AsyncRetrying(
        # close() cancels the task running this, but a cancellation can be lost inside a
        # connect attempt (ib_async's asyncio.wait_for on 3.11): then closing() ends it
        stop=lambda _: closing(),
        wait=reconnect_wait(initial_s, max_s),
        retry=retry_if_exception_type(Exception),  # CancelledError is not one
        before_sleep=_log_failure,
        reraise=True,
    )

    async def attempt() -> None:  # a coroutine function, whatever ``connect`` is
        await connect()

    try:
        await retrying(attempt)
    except Exception:
        if not closing():  # only closing stops the retries
            raise
