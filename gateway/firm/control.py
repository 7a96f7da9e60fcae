"""The firm halt and kill: one row in ``firm_control`` is the truth; NOTIFY only carries it fast.

A firm halt keeps its first reason and ``since`` (like a gateway's own halt); a kill sets
``kill`` on the halt in force. Every change bumps ``seq``, and is NOTIFYed on ``CHANNEL`` in
the same transaction, with the row as its payload: a gateway applies what it hears at once,
and one that missed it reads the row when it reconnects, and at start. A gateway runs its kill
switch once per kill (``firm_gateways.applied_seq`` remembers the last one it ran).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.firm.schema import Conn

CHANNEL = "gateway_firm"

_COLUMNS = "halted, kill, reason, by_whom, since, seq"


@dataclass(frozen=True, slots=True)
class FirmControl:
    halted: bool = False
    kill: bool = False
    reason: str | None = None
    by: str | None = None
    since: datetime | None = None
    seq: int = 0

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> FirmControl:
        halted, kill, reason, by, since, seq = row
        return cls(bool(halted), bool(kill), reason, by, since, int(seq))

    def to_json(self) -> dict[str, Any]:
        return {
            "halted": self.halted,
            "kill": self.kill,
            "reason": self.reason,
            "by": self.by,
            "since": self.since.isoformat() if self.since else None,
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, text: str) -> FirmControl:
        """The NOTIFY payload; ValueError for anything that is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            raise ValueError(f"not a firm control payload: {text[:200]!r}")
        since = data.get("since")
        return cls(
            halted=bool(data.get("halted")),
            kill=bool(data.get("kill")),
            reason=data.get("reason"),
            by=data.get("by"),
            since=datetime.fromisoformat(since) if since else None,
            seq=data["seq"],
        )


async def read_control(conn: Conn) -> FirmControl:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM firm_control WHERE id = 1")
    row = await cur.fetchone()
    if row is None:
        return FirmControl()
    return FirmControl.from_row(row)


async def _change(
    conn: Conn, kind: str, sql: str, params: tuple[Any, ...] | dict[str, Any], by: str
) -> FirmControl:
    async with conn.transaction():
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
        assert row is not None  # migration 1 inserts the one row
        control = FirmControl.from_row(row)
        await conn.execute(
            "INSERT INTO firm_events (kind, reason, by_whom, detail) VALUES (%s, %s, %s, %s)",
            (kind, control.reason, by, json.dumps(control.to_json())),
        )
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(control.to_json())))
    return control


async def firm_halt(conn: Conn, reason: str, *, by: str, kill: bool = False) -> FirmControl:
    """Halt (or kill) the firm; durable and NOTIFYed when this returns."""
    sql = f"""
        UPDATE firm_control SET
            reason = CASE WHEN halted THEN reason ELSE %(reason)s END,
            by_whom = CASE WHEN halted THEN by_whom ELSE %(by)s END,
            since = CASE WHEN halted THEN since ELSE now() END,
            halted = true,
            kill = kill OR %(kill)s,
            seq = seq + 1
        WHERE id = 1 RETURNING {_COLUMNS}"""
    params = {"reason": reason, "by": by, "kill": kill}
    return await _change(conn, "kill" if kill else "halt", sql, params, by)


async def firm_resume(conn: Conn, *, by: str, detail: str = "") -> FirmControl:
    """Lift the firm halt; each gateway then follows its own resume rules."""
    sql = f"""
        UPDATE firm_control SET halted = false, kill = false, reason = NULL, by_whom = %s,
            since = NULL, seq = seq + 1
        WHERE id = 1 RETURNING {_COLUMNS}"""
    return await _change(conn, "resume" + (f" ({detail})" if detail else ""), sql, (by,), by)
