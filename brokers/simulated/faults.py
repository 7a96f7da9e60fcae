"""Fire drills: the simulated broker plays a slow or failing broker on demand.

Set from ``brokers.simulated.faults`` in gateway.yaml or ``POST /v1/sim/faults``; every field is
optional and off by default. A fault changes only what the broker does: the gateway cannot tell
a drill from a real outage.

- ``latency_ms``: every broker call (submit, cancel, get_order, open_orders, cancel_all) waits
  this long before it takes effect and answers.
- ``lose_submit_answers``: the next N submits reach the market (the order rests or fills) but
  their answer is lost: the call fails as a transient error, as a dropped connection would.
- ``fail_lookups_s``: for this many seconds from now, get_order and open_orders fail as
  transient errors.
- ``reject_submits``: the next N submits are refused by the broker (a definite rejection).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """The faults in force (or asked for): all off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0, ge=0, le=60_000, allow_inf_nan=False)
    lose_submit_answers: int = Field(default=0, ge=0, le=1_000_000)
    fail_lookups_s: float = Field(default=0, ge=0, le=86_400, allow_inf_nan=False)
    reject_submits: int = Field(default=0, ge=0, le=1_000_000)
