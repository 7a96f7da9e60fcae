"""Submitting an order so that a retry can never make a second one.

A transient error (connection lost, 429, 5xx, timeout) may mean the order landed and only the
answer was lost, so before every retry the broker is asked for the client_order_id; an order it
knows is adopted. A duplicate-id refusal means the first attempt landed: adopt it too. Retries are
tenacity's, bounded and jittered, honouring a rate limit's retry-after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from brokers.base import Broker, BrokerOrder, OrderRequest
from brokers.errors import BrokerError, DuplicateOrder, RateLimited

log = logging.getLogger("gateway.pipeline.submitter")


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    order: BrokerOrder | None
    error: BrokerError | None = None
    attempts: int = 1


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    base = wait_random_exponential(multiplier=0.05, max=2.0)(state)
    if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
        return max(base, min(exc.retry_after_s, 10.0))
    return base


class OrderSubmitter:
    def __init__(self, broker: Broker, *, attempts: int = 4):
        self._broker = broker
        self._attempts = attempts

    async def submit(self, request: OrderRequest) -> SubmitOutcome:
        attempt_no = 0

        async def attempt() -> BrokerOrder:
            nonlocal attempt_no
            attempt_no += 1
            if attempt_no > 1:
                # The previous answer may have been lost in flight: look before sending again.
                landed = await self._broker.get_order(request.client_order_id)
                if landed is not None:
                    log.warning(
                        "adopted an order whose submit answer was lost",
                        extra={"client_order_id": request.client_order_id},
                    )
                    return landed
            try:
                return await self._broker.submit(request)
            except DuplicateOrder:
                landed = await self._broker.get_order(request.client_order_id)
                if landed is None:
                    raise
                return landed

        # Fast path: most submits succeed at once and need no retry machinery.
        try:
            return SubmitOutcome(await attempt(), None, 1)
        except BrokerError as exc:
            if not exc.transient or self._attempts <= 1:
                return SubmitOutcome(None, exc, 1)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts - 1),
            wait=_wait,
            retry=retry_if_exception(lambda e: isinstance(e, BrokerError) and e.transient),
            reraise=True,
        )
        try:
            order: BrokerOrder = await retrying(attempt)
        except BrokerError as exc:
            return SubmitOutcome(None, exc, attempt_no)
        return SubmitOutcome(order, None, attempt_no)
