"""What ``gateway archive`` moves, as SQL on the live journal's connection (see
gateway.store.archive for the steps and why each is safe).

The selection is made once into temporary tables (``temp.mv_*``), then used to copy the rows
into the archive and, later, to delete exactly those rows from the live journal: what is
written and what is deleted are the same rows by construction.

What moves, given the start of a trading day ``cut`` (an ISO-8601 UTC text; the journal's
stamps compare as text):

- an order group (a bracket's entry and every leg, or a plain order) whose every order is final,
  was created and last changed before ``cut``, whose fills all came before ``cut``, and whose
  every signal (the signal that made it, the replaces that moved it) was decided before ``cut``;
  with its fills and status history;
- a signal decided before ``cut`` none of whose orders stays;
- the stream's events up to the last one before the first event at or after ``cut`` (a
  contiguous range of ids, so the archives and the live journal split the ids cleanly);
- journal events (halts, resumes, equity marks...) before ``cut``, except the last of each kind:
  the gateway reads the last halt, reset, kill report... of the live journal at start.

Never: an undecided signal, an open order or any order of its group, an order whose journaled
fills fall short of its filled quantity (the next start's fill recovery asks for them) or any
order of its group, anything newer, the key-value state.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

FINAL_STATUSES = ("filled", "canceled", "rejected", "expired")
# The tables an archive holds, copied with the live journal's own definition (its columns).
TABLES = ("signals", "orders", "order_events", "fills", "stream", "events")

_FINAL = ",".join(f"'{s}'" for s in FINAL_STATUSES)

_SELECT = [
    "DROP TABLE IF EXISTS temp.mv_orders",
    "DROP TABLE IF EXISTS temp.kept_orders",
    "DROP TABLE IF EXISTS temp.mv_signals",
    "DROP TABLE IF EXISTS temp.mv_events",
    "CREATE TEMP TABLE mv_orders (client_order_id TEXT PRIMARY KEY)",
    f"""INSERT INTO temp.mv_orders
    WITH kept AS (
        SELECT COALESCE(parent_id, client_order_id) AS root FROM main.orders
        WHERE status NOT IN ({_FINAL}) OR updated_at >= :cut OR created_at >= :cut
        UNION SELECT COALESCE(o.parent_id, o.client_order_id) FROM main.orders o
        JOIN main.signals s ON s.signal_id = o.signal_id
        WHERE s.decision IS NULL OR COALESCE(s.decided_at, s.received_at) >= :cut
        UNION SELECT COALESCE(o.parent_id, o.client_order_id) FROM main.signals s
        JOIN main.orders o ON o.client_order_id = s.client_order_id
        WHERE s.decision IS NULL OR COALESCE(s.decided_at, s.received_at) >= :cut
        UNION SELECT COALESCE(o.parent_id, o.client_order_id) FROM main.fills f
        JOIN main.orders o ON o.client_order_id = f.client_order_id WHERE f.at >= :cut
        UNION SELECT COALESCE(parent_id, client_order_id) FROM main.orders
        WHERE client_order_id IN (SELECT client_order_id FROM temp.short_orders)
    )
    SELECT client_order_id FROM main.orders
    WHERE COALESCE(parent_id, client_order_id) NOT IN (SELECT root FROM kept)""",
    "CREATE TEMP TABLE kept_orders (client_order_id TEXT PRIMARY KEY, signal_id TEXT)",
    """INSERT INTO temp.kept_orders SELECT client_order_id, signal_id FROM main.orders
    WHERE client_order_id NOT IN (SELECT client_order_id FROM temp.mv_orders)""",
    "CREATE TEMP TABLE mv_signals (signal_id TEXT PRIMARY KEY)",
    """INSERT INTO temp.mv_signals SELECT signal_id FROM main.signals
    WHERE decision IS NOT NULL AND COALESCE(decided_at, received_at) < :cut
    AND signal_id NOT IN (SELECT signal_id FROM temp.kept_orders WHERE signal_id IS NOT NULL)
    AND (client_order_id IS NULL
         OR client_order_id NOT IN (SELECT client_order_id FROM temp.kept_orders))""",
    "CREATE TEMP TABLE mv_events (id INTEGER PRIMARY KEY)",
    """INSERT INTO temp.mv_events SELECT id FROM main.events WHERE at < :cut
    AND id NOT IN (SELECT MAX(id) FROM main.events GROUP BY kind)""",
]

# table -> the rows of it that move (the same text copies them and deletes them).
_WHERE = {
    "signals": "signal_id IN (SELECT signal_id FROM temp.mv_signals)",
    "orders": "client_order_id IN (SELECT client_order_id FROM temp.mv_orders)",
    "order_events": "client_order_id IN (SELECT client_order_id FROM temp.mv_orders)",
    "fills": "client_order_id IN (SELECT client_order_id FROM temp.mv_orders)",
    "stream": "seq <= :last_seq",
    "events": "id IN (SELECT id FROM temp.mv_events)",
}


@dataclass(frozen=True, slots=True)
class Selection:
    cut: str
    last_seq: int  # the stream moves up to this id (0: none of it)
    counts: dict[str, int]  # table -> rows that move

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())

    @property
    def params(self) -> dict[str, object]:
        return {"cut": self.cut, "last_seq": self.last_seq}


def select(db: sqlite3.Connection, cut: str) -> Selection:
    """Decide what moves (into temp tables of ``db``) and count it."""
    _short_orders(db)
    for sql in _SELECT:
        db.execute(sql, {"cut": cut} if ":cut" in sql else {})
    first_kept = db.execute("SELECT MIN(seq) FROM main.stream WHERE at >= ?", (cut,)).fetchone()
    if first_kept[0] is not None:
        last_seq = int(first_kept[0]) - 1
    else:
        last_seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM main.stream").fetchone()[0])
    params = {"cut": cut, "last_seq": last_seq}
    counts = {
        table: int(db.execute(f"SELECT COUNT(*) FROM main.{table} WHERE {where}", params)
                   .fetchone()[0])
        for table, where in _WHERE.items()
    }  # fmt: skip
    return Selection(cut, last_seq, counts)


def _short_orders(db: sqlite3.Connection) -> None:
    """``temp.short_orders``: orders whose journaled fills add up to less than their filled
    quantity (a fill event lost to a kill -9). They stay, with their group: the next start's
    fill recovery reads the live journal's orders only, and must still find them."""
    db.execute("DROP TABLE IF EXISTS temp.short_orders")
    db.execute("CREATE TEMP TABLE short_orders (client_order_id TEXT PRIMARY KEY)")
    sums: dict[str, Decimal] = {}
    for coid, qty in db.execute("SELECT client_order_id, quantity FROM main.fills"):
        sums[coid] = sums.get(coid, Decimal(0)) + Decimal(qty)
    orders = db.execute(
        "SELECT client_order_id, filled_quantity FROM main.orders WHERE filled_quantity <> '0'"
    ).fetchall()
    short = [(c,) for c, filled in orders if Decimal(filled) > sums.get(c, Decimal(0))]
    db.executemany("INSERT INTO temp.short_orders VALUES (?)", short)


def copy_into(db: sqlite3.Connection, schema: str, chosen: Selection) -> None:
    """Create the archive's tables in the attached ``schema`` and copy the chosen rows there
    (the caller holds the transaction)."""
    for table in TABLES:
        (ddl,) = db.execute(
            "SELECT sql FROM main.sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone()
        db.execute(ddl.replace("CREATE TABLE ", f"CREATE TABLE {schema}.", 1))
        db.execute(
            f"INSERT INTO {schema}.{table} SELECT * FROM main.{table} WHERE {_WHERE[table]}",
            chosen.params,
        )
    # What a look-up by id needs in the archive (the primary keys are there already).
    db.execute(f"CREATE INDEX {schema}.fills_order ON fills(client_order_id)")
    db.execute(f"CREATE TABLE {schema}.archive_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def count_in(db: sqlite3.Connection) -> dict[str, int]:
    """The rows of each archived table in an archive file (to verify it against the plan)."""
    return {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


def delete_moved(db: sqlite3.Connection, chosen: Selection, archive_id: int) -> None:
    """Leave a stub per moved signal, then delete every moved row from the live journal (the
    caller holds the transaction: all of it or none)."""
    db.execute(
        "INSERT INTO main.archived_signals (signal_id, body_hash, archive) "
        f"SELECT signal_id, body_hash, ? FROM main.signals WHERE {_WHERE['signals']}",
        (archive_id,),
    )
    # Children first: a fill or status row never outlives its order, even for a moment.
    for table in ("fills", "order_events", "orders", "signals", "stream", "events"):
        db.execute(f"DELETE FROM main.{table} WHERE {_WHERE[table]}", chosen.params)
