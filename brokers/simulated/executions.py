"""The simulated broker's executions: every fill it made, with its own fill id, so that a
gateway that lost a fill event (killed between the submit's answer and the event, or down while
a resting order filled) can ask for it again (``SimulatedBroker.executions``).

In the state file (table ``executions``, schema version 4) each fill is written in the same
transaction as the order's fill itself (``state.StateFile.write``): an order the file shows
filled always has its executions beside it. Files from before version 4 have none for the fills
they made then; those orders answer no executions (the broker cannot tell them, so it does not
make them up). A broker without a state file keeps them in memory (``MemoryExecutions``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from datetime import datetime

from brokers.base import Fill

CREATE_TABLE = """
CREATE TABLE executions (
    client_order_id TEXT NOT NULL,
    fill_id TEXT NOT NULL,
    broker_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY (client_order_id, fill_id)
)
"""

_COLUMNS = ("client_order_id", "fill_id", "broker_order_id", "symbol", "side", "quantity")
_INSERT = (
    f"INSERT INTO executions ({', '.join(_COLUMNS)}, price, ts) VALUES (?,?,?,?,?,?,?,?) "
    "ON CONFLICT (client_order_id, fill_id) DO NOTHING"
)
# SQLite's limit on host parameters is at least 999: look-ups go in chunks below it.
_CHUNK = 500


def write(db: sqlite3.Connection, fills: Iterable[Fill]) -> None:
    """Inside the caller's transaction (the one that writes the orders these fills changed)."""
    rows = [
        (
            f.client_order_id,
            f.fill_id,
            f.broker_order_id,
            f.symbol,
            f.side.value,
            str(f.quantity),
            str(f.price),
            f.ts.isoformat(),
        )
        for f in fills
    ]
    if rows:  # most changes carry no fill: no statement for them
        db.executemany(_INSERT, rows)


def read(db: sqlite3.Connection, client_order_ids: Collection[str]) -> list[Fill]:
    """The executions of these orders, in the order they were made (rowid)."""
    ids = list(dict.fromkeys(client_order_ids))
    found: list[tuple[int, Fill]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT rowid, {', '.join(_COLUMNS)}, price, ts FROM executions "
            f"WHERE client_order_id IN ({marks})",
            chunk,
        )
        found.extend((row[0], _fill(row[1:])) for row in rows)
    return [fill for _, fill in sorted(found, key=lambda pair: pair[0])]


def _fill(row: tuple[str, ...]) -> Fill:
    coid, fill_id, broker_order_id, symbol, side, quantity, price, ts = row
    return Fill(
        client_order_id=coid,
        broker_order_id=broker_order_id,
        symbol=symbol,
        side=side,  # validated by the model
        quantity=quantity,
        price=price,
        ts=datetime.fromisoformat(ts),
        fill_id=fill_id,
    )


class MemoryExecutions:
    """The executions of a broker that keeps its account in memory only (read only after a
    lost event stream, so a scan of them all is cheap enough)."""

    def __init__(self) -> None:
        self._all: list[Fill] = []

    def add(self, fills: Iterable[Fill]) -> None:
        self._all.extend(fills)

    def read(self, client_order_ids: Collection[str]) -> list[Fill]:
        wanted = set(client_order_ids)
        return [fill for fill in self._all if fill.client_order_id in wanted]
