"""Fire drills: the simulated broker plays a slow or failing broker on demand.

Set from ``brokers.simulated.faults`` in gateway.yaml or ``POST /v1/sim/faults``; every field is
optional and off by default. A fault changes only what the broker does: the gateway cannot tell
a drill from a real outage.

- ``latency_ms``: every broker call (submit, submit_bracket, cancel, replace, get_order,
  open_orders, adopt_bracket, cancel_all, link_oco) waits this long before it takes effect and
  answers.
- ``lose_submit_answers``: the next N submits reach the market (the order rests or fills) but
  their answer is lost: the call fails as a transient error, as a dropped connection would.
- ``fail_lookups_s``: for this many seconds from now, get_order, open_orders and adopt_bracket
  fail as transient errors.
- ``reject_submits``: the next N submits are refused by the broker (a definite rejection).

A submit_bracket is one submit for these counters: the whole bracket is refused, or placed
with its answer lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Faults(BaseModel):
    """The faults in force (or asked for): all off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0, ge=0, le=60_000, allow_inf_nan=False)
    lose_submit_answers: int = Field(default=0, ge=0, le=1_000_000)
    fail_lookups_s: float = Field(default=0, ge=0, le=86_400, allow_inf_nan=False)
    reject_submits: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # pydantic would take true for 1: a drill is asked for with numbers only.
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        return value


class FaultState:
    """The faults in force on one simulated broker, and the bookkeeping each drill needs.

    The counters (``reject_submits``, ``lose_submit_answers``) count down as submits use them;
    ``fail_lookups_s`` runs from the moment the faults were set, on the broker's clock.
    """

    def __init__(self, clock: Callable[[], datetime], faults: Faults | None = None):
        self._clock = clock
        self._latency_ms = 0.0
        self._lose_answers = 0
        self._rejects = 0
        self._lookups_fail_until: datetime | None = None
        self.replace(faults or Faults())

    def replace(self, faults: Faults) -> Faults:
        """Put ``faults`` in force instead of every fault before (``Faults()`` clears them)."""
        self._latency_ms = faults.latency_ms
        self._lose_answers = faults.lose_submit_answers
        self._rejects = faults.reject_submits
        self._lookups_fail_until = (
            self._clock() + timedelta(seconds=faults.fail_lookups_s)
            if faults.fail_lookups_s > 0
            else None
        )
        return self.current()

    def current(self) -> Faults:
        """The faults in force now; ``fail_lookups_s`` is the time still left."""
        return Faults(
            latency_ms=self._latency_ms,
            lose_submit_answers=self._lose_answers,
            fail_lookups_s=self._lookups_left_s(),
            reject_submits=self._rejects,
        )

    async def delay(self) -> None:
        """The latency drill: wait before the call takes effect (never blocking the loop)."""
        if self._latency_ms > 0:
            await asyncio.sleep(self._latency_ms / 1000)

    def take_reject(self) -> bool:
        """Whether this submit is refused by the reject drill (and count it)."""
        if self._rejects <= 0:
            return False
        self._rejects -= 1
        return True

    def take_lost_answer(self) -> bool:
        """Whether this submit's answer is lost (and count it)."""
        if self._lose_answers <= 0:
            return False
        self._lose_answers -= 1
        return True

    @property
    def lookups_failing(self) -> bool:
        return self._lookups_left_s() > 0

    def _lookups_left_s(self) -> float:
        if self._lookups_fail_until is None:
            return 0.0
        left = (self._lookups_fail_until - self._clock()).total_seconds()
        if left <= 0:
            self._lookups_fail_until = None
            return 0.0
        return left
