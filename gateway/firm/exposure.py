"""The firm exposure limit: one PostgreSQL transaction per reservation.

Each gateway keeps its row in ``firm_gateways`` current (``publish``, every interval): its gross
exposure, positions plus open and in-flight orders, as its own book counts them. A signal that
passed the local checks (its exposure already reserved in the local book) then reserves in
PostgreSQL: under one transaction-scoped advisory lock, the sum of every gateway's row plus every
live reservation plus this order must stay within ``max_gross_exposure``, and the reservation is
inserted in the same transaction. The lock serialises every check of the firm, so two gateways
can never both pass with room for one.

A reservation is settled by the next publish: the row then counts the order itself, and the
reservation is deleted in the same transaction. Every PostgreSQL transaction of a gateway runs
on one session, one at a time, and the publish takes the book's figures only once it has that
session: each reservation of this gateway is then either committed (and settled by this
publish) or not begun. An order the figures count whose reservation has not begun (it passed
the local checks meanwhile) is *pre-counted*: its check counts it in the row already and
inserts nothing, so no order is ever counted twice, nor nowhere. ``release`` (every path that
does not send) deletes a reservation whose order never left. Reservations left by an earlier
run of this gateway (``at`` before this run registered) are deleted by its first publish: its
book has recovered their orders from the journal by then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.firm.errors import FirmError
from gateway.firm.link import FirmLink

log = logging.getLogger("gateway.firm.exposure")

EXPOSURE_LOCK = (0x4647, 2)  # pg_advisory_xact_lock keys: every firm exposure check


@dataclass(frozen=True, slots=True)
class Figures:
    """What a gateway publishes in its row."""

    state: str
    equity: Decimal | None
    gross_exposure: Decimal
    heat: Decimal | None
    in_flight: frozenset[str]  # client_order_ids the gross exposure counts as in flight


class FirmExposure:
    def __init__(
        self,
        link: FirmLink,
        *,
        gateway_id: str,
        account: str,
        limit: Decimal | None,
        figures: Callable[[], Figures | None],
    ):
        """``figures`` is the gateway's book now, or None before it is loaded (start)."""
        self._link = link
        self._id = gateway_id
        self._account = account
        self.limit = limit
        self._figures = figures
        self._live: dict[str, Decimal] = {}  # committed reservations not yet in the row
        self._dead: set[str] = set()  # released, or of unknown fate: delete when possible
        self._precounted: frozenset[str] = frozenset()  # in the row, with no reservation
        self._registered_at: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def reserved(self) -> Decimal:
        return sum(self._live.values(), Decimal(0))

    async def register(self, role: str = "active") -> None:
        """This gateway's row, kept from an earlier run (its exposure stays counted until the
        first publish replaces it); remembers when this run began, by the server's clock."""
        async with self._link.work() as conn:
            cur = await conn.execute(
                """INSERT INTO firm_gateways (gateway_id, account, role, max_gross_exposure)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (gateway_id) DO UPDATE SET account = EXCLUDED.account,
                    role = EXCLUDED.role, max_gross_exposure = EXCLUDED.max_gross_exposure,
                    started_at = now(), heartbeat = now()
                RETURNING now()""",
                (self._id, self._account, role, self.limit),
            )
            row = await cur.fetchone()
        self._registered_at = row[0] if row else None

    async def reserve(self, client_order_id: str, amount: Decimal) -> str | None:
        """None when the order fits under the firm limit (reserved); else why not."""
        if self.limit is None:
            return None
        try:
            async with self._link.work() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", EXPOSURE_LOCK)
                # One statement, one snapshot: a publish cannot fall between the two sums.
                cur = await conn.execute(
                    """SELECT (SELECT coalesce(sum(gross_exposure), 0) FROM firm_gateways)
                        + (SELECT coalesce(sum(amount), 0) FROM firm_reservations)"""
                )
                row = await cur.fetchone()
                total = Decimal(row[0]) if row else Decimal(0)
                counted = client_order_id in self._precounted  # the row has it already
                if total + (0 if counted else amount) > self.limit:
                    return (
                        f"the firm's gross exposure {total} plus this order's {amount} would "
                        f"exceed max_gross_exposure {self.limit}"
                    )
                if not counted:
                    await conn.execute(
                        """INSERT INTO firm_reservations (gateway_id, client_order_id, amount)
                        VALUES (%s, %s, %s) ON CONFLICT DO NOTHING""",
                        (self._id, client_order_id, amount),
                    )
                    # Before the commit and the session's next turn: a publish sees it.
                    self._live[client_order_id] = amount
        except FirmError as exc:
            self._live.pop(client_order_id, None)
            self._dead.add(client_order_id)  # it may have committed: delete it when we can
            return f"the firm exposure cannot be checked: {exc}"
        except BaseException:
            self._live.pop(client_order_id, None)
            self._dead.add(client_order_id)
            raise
        return None

    def release(self, client_order_id: str) -> None:
        """The order did not leave: its reservation goes now (or at the next publish)."""
        if self.limit is None:
            return
        self._live.pop(client_order_id, None)
        self._dead.add(client_order_id)
        if self._link.up:
            task = asyncio.create_task(self._delete_dead(), name="firm-release")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _delete_dead(self) -> None:
        dead = set(self._dead)
        try:
            async with self._link.work() as conn:
                await conn.execute(
                    "DELETE FROM firm_reservations WHERE gateway_id = %s "
                    "AND client_order_id = ANY(%s)",
                    (self._id, list(dead)),
                )
        except FirmError as exc:
            log.warning("firm reservations not released yet (the next publish will): %s", exc)
            return
        self._dead -= dead

    async def publish(self) -> None:
        """The gateway's row from its book now, settling the reservations it now counts."""
        async with self._link.work() as conn:
            # Taken once this gateway's session is ours: no reservation of ours is half done.
            figures = self._figures()
            settled = set(self._live) | self._dead
            if figures is None:
                await conn.execute(
                    "UPDATE firm_gateways SET heartbeat = now() WHERE gateway_id = %s",
                    (self._id,),
                )
                return
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", EXPOSURE_LOCK)
            await conn.execute(
                """UPDATE firm_gateways SET state = %s, equity = %s, gross_exposure = %s,
                    heat = %s, heartbeat = now() WHERE gateway_id = %s""",
                (figures.state, figures.equity, figures.gross_exposure, figures.heat, self._id),
            )
            await conn.execute(
                """DELETE FROM firm_reservations WHERE gateway_id = %s
                AND (client_order_id = ANY(%s) OR at < %s)""",
                (self._id, list(settled), self._registered_at),
            )
        # Committed (else FirmUnavailable left the last row's view in force), and before any
        # other transaction of ours can run: no await since the session was given back.
        self._precounted = figures.in_flight - settled
        for coid in settled:
            self._live.pop(coid, None)
        self._dead -= settled

    async def set_applied(self, seq: int) -> None:
        """Remember that this gateway ran the firm kill of ``seq``."""
        async with self._link.work() as conn:
            await conn.execute(
                "UPDATE firm_gateways SET applied_seq = greatest(applied_seq, %s) "
                "WHERE gateway_id = %s",
                (seq, self._id),
            )

    async def applied_seq(self) -> int:
        async with self._link.work() as conn:
            cur = await conn.execute(
                "SELECT applied_seq FROM firm_gateways WHERE gateway_id = %s", (self._id,)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def run(self) -> None:
        """Publish every interval while the link is up."""
        while True:
            await asyncio.sleep(self._link.interval)
            if self._link.up:
                try:
                    await self.publish()
                except FirmError as exc:
                    log.warning("firm row not published: %s", exc)
                except Exception:
                    # The book could not be read: the row keeps its last figures, which the
                    # reservations since still top up; say so and try again next interval.
                    log.exception("firm row not published")
