"""The event log strategies follow (GET /v1/events): one ``stream`` row per decision, order
change, fill and change of risk state, written in the transaction of the change it reports.

Its ``seq`` is the event's id: strictly increasing in commit order (one writer, and a row
becomes visible only with the commit that made it), so a reader that asks for everything after
the last id it saw misses nothing and sees nothing twice, across a restart too.
"""

from __future__ import annotations

from gateway.models import FillRecord
from gateway.store.db import Driver
from gateway.store.schema import StoredOrder

DECISION, ORDER, FILL, STATE = "decision", "order", "fill", "state"
EVENT_TYPES = (DECISION, ORDER, FILL, STATE)


def append(db: Driver, kind: str, strategy: str | None, payload: str, at: str) -> None:
    db.execute(
        "INSERT INTO stream (type, strategy, payload, at) VALUES (?,?,?,?)",
        (kind, strategy, payload, at),
    )


def append_order(db: Driver, order: StoredOrder, at: str) -> None:
    append(db, ORDER, order.strategy, order.view().model_dump_json(), at)


def append_fill(db: Driver, fill: FillRecord, at: str) -> None:
    append(db, FILL, fill.strategy, fill.model_dump_json(), at)
