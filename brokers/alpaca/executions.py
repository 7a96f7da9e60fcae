"""The executions of gateway orders, read from Alpaca again (``AlpacaBroker.executions``).

A restart of the gateway does not catch up on fills through the stream: the adapter asks for
missed FILL activities only after its trading stream dropped and came back within one process.
So the gateway asks by client_order_id: each order is looked up (``Lifecycle.find``), then the
FILL activities since the earliest of them was submitted are read (``fill_activities``, paged)
and those of these orders kept.

Each fill is named as the adapter names a fill it recovers: ``{order id}:{cumulative qty}``
(``ledger.Ledger.fill``), stable however often it is asked. A fill the live stream reported
carried Alpaca's ``execution_id`` instead; the gateway takes recovered fills only when they do
not add up to more than an order is missing, so a fill is never journaled under both names.

Not told (absent from the answer, so the gateway reports the gap): an order Alpaca does not
know, and an order that was replaced (its fills are spread over the orders of its chain).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from brokers.alpaca.ledger import Raw
from brokers.alpaca.lifecycle import Lifecycle
from brokers.alpaca.models import UnparsableAnswer, parse_ts
from brokers.base import Fill, to_decimal

# Activities are asked from a little before the first submit (clocks and rounding).
MARGIN = timedelta(seconds=1)


async def executions(lifecycle: Lifecycle, client_order_ids: Collection[str]) -> list[Fill]:
    """The FILL activities of these orders, oldest first, as ``Fill``s."""
    owners: dict[str, str] = {}  # Alpaca order id -> the gateway's client_order_id
    submitted = []
    for coid in dict.fromkeys(client_order_ids):
        raw = await lifecycle.find(coid)
        if raw is None or raw.get("replaces") or raw.get("status") == "replaced":
            continue  # unknown, or a chain: not told (see the module docstring)
        owners[str(raw.get("id"))] = coid
        submitted.append(parse_ts(raw.get("submitted_at") or raw.get("created_at")))
    if not owners:
        return []
    activities = await lifecycle.fill_activities(min(submitted) - MARGIN)
    return [
        _fill(activity, owners[str(activity.get("order_id"))])
        for activity in activities
        if str(activity.get("order_id")) in owners
    ]


def _fill(activity: Raw, client_order_id: str) -> Fill:
    order_id = str(activity.get("order_id"))
    try:
        cum = to_decimal(activity.get("cum_qty"))
        return Fill(
            client_order_id=client_order_id,
            broker_order_id=order_id,
            symbol=str(activity.get("symbol") or ""),
            side=activity.get("side"),
            quantity=activity.get("qty"),
            price=activity.get("price"),
            ts=parse_ts(activity.get("transaction_time")),
            fill_id=f"{order_id}:{cum.normalize():f}",
        )
    except ValueError as exc:  # pydantic's ValidationError: an activity out of shape
        raise UnparsableAnswer(f"order {order_id}: activity not understood: {exc}") from exc
