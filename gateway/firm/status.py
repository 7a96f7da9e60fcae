"""``gateway firm status``: the firm halt in force and every gateway's row."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.firm.control import read_control
from gateway.firm.schema import Conn


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


async def firm_status(conn: Conn) -> dict[str, Any]:
    """The firm as PostgreSQL holds it; heartbeat ages by the server's clock."""
    control = await read_control(conn)
    cur = await conn.execute(
        """SELECT gateway_id, account, role, state, equity, gross_exposure, heat,
            max_gross_exposure, heartbeat, extract(epoch FROM now() - heartbeat)
        FROM firm_gateways ORDER BY gateway_id"""
    )
    gateways = []
    total = Decimal(0)
    for row in await cur.fetchall():
        gid, account, role, state, equity, gross, heat, limit, beat, age = row
        heartbeat: datetime = beat
        total += gross
        gateways.append(
            {
                "gateway_id": gid,
                "account": account,
                "role": role,
                "state": state,
                "equity": _number(equity),
                "gross_exposure": _number(gross),
                "heat": _number(heat),
                "max_gross_exposure": _number(limit),
                "last_heartbeat": heartbeat.isoformat(),
                "heartbeat_age_s": round(float(age), 3),
            }
        )
    cur = await conn.execute("SELECT count(*), coalesce(sum(amount), 0) FROM firm_reservations")
    counted = await cur.fetchone()
    count, reserved = counted if counted else (0, Decimal(0))
    return {
        "halt": control.to_json() if control.halted else None,
        "seq": control.seq,
        "gateways": gateways,
        "gross_exposure": float(total),
        "reservations": {"count": int(count), "amount": float(reserved)},
    }
