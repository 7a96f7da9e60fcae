"""Fills the journal never got: asked of the broker again after the event stream was lost.

A fill reaches the journal through the broker's event stream, after the submit's answer (which
may already say ``filled``) was journaled with its decision. A kill -9 between the two, or a
gateway that was down while a resting order filled, leaves an order whose filled quantity is
more than its journaled fills add up to. The book is right anyway (a restart takes positions
from the broker), but ``GET /v1/fills`` and the stream's fill events would never add up to the
position a strategy holds.

So at start, and after the broker link comes back, every such order's executions are asked of
the broker (``ExecutionSource.executions``) and journaled as live fills are: each with the
broker's own fill_id, quantity, price and time, its row and its ``fill`` event in one
transaction, one already journaled under its fill_id adding nothing (asking twice is safe, and
so is a live event racing this). They are journaled only: the book's positions hold them
already. What the broker cannot tell stays missing and is reported (a ``fill_gap`` journal
event and a warning naming the order and the quantity), never made up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from brokers.base import Broker, Fill
from brokers.errors import BrokerError
from gateway.store.journal import Journal
from gateway.store.schema import JournalUnavailable

log = logging.getLogger("gateway.pipeline.fill_recovery")

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillGap:
    """An order whose journaled fills still add up to less than its filled quantity."""

    client_order_id: str
    symbol: str
    filled_quantity: Decimal
    journaled: Decimal
    reason: str

    @property
    def missing(self) -> Decimal:
        return self.filled_quantity - self.journaled

    def as_json(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "filled_quantity": str(self.filled_quantity),
            "journaled_fills": str(self.journaled),
            "missing_quantity": str(self.missing),
            "reason": self.reason,
        }


class FillRecovery:
    """One gateway's recovery: a gap it reported once (the same order, the same quantity
    missing) is not reported again by a later run of the same process, such as the
    reconciliation that follows the broker's first connection event."""

    def __init__(self, journal: Journal, broker: Broker):
        self._journal = journal
        self._broker = broker
        self._reported: set[tuple[str, Decimal]] = set()

    async def run(self) -> list[FillGap]:
        """Journal the fills the broker can tell for every order short of them; the gaps
        left. A journal that cannot be read now is logged: the next run tries again."""
        try:
            gaps = await _recover(self._journal, self._broker)
        except JournalUnavailable as exc:
            log.error("fill recovery could not read the journal: %s", exc)
            return []
        for gap in gaps:
            if (gap.client_order_id, gap.missing) not in self._reported:
                self._reported.add((gap.client_order_id, gap.missing))
                _report(self._journal, gap)
        return gaps


async def _recover(journal: Journal, broker: Broker) -> list[FillGap]:
    short = journal.fill_shortfalls()
    if not short:
        return []
    ids = [stored.client_order_id for stored, _, _ in short]
    told: list[Fill] = []
    unreadable = None
    try:
        told = await _executions(broker, ids)
    except BrokerError as exc:
        unreadable = f"executions could not be read: {exc.message}"
        log.warning("executions of %d orders could not be read: %s", len(ids), exc)
    except Exception as exc:
        # An adapter's own bug: the gap is reported like any unreadable answer, and the start
        # (which awaits this) goes on: the positions come from the broker, not from the fills.
        unreadable = f"executions could not be read: {type(exc).__name__}: {exc}"
        log.exception("executions of %d orders could not be read", len(ids))
    # Read again after the wait: a live fill journaled meanwhile (named as the live stream
    # names it, not as the answer does) is not missing any more, and must not count twice.
    asked = set(ids)
    short = journal.fill_shortfalls(asked)
    by_order: dict[str, list[Fill]] = {}
    for fill in told:
        if fill.fill_id:  # an id makes asking again safe; a fill without one is not taken
            by_order.setdefault(fill.client_order_id, []).append(fill)
    reasons: dict[str, str] = {}
    for stored, journaled, known in short:
        coid = stored.client_order_id
        new = [f for f in by_order.get(coid, []) if f.fill_id not in known]
        if sum((f.quantity for f in new), ZERO) > Decimal(stored.filled_quantity) - journaled:
            # More than is missing: the broker's ids do not match the journaled fills (or it
            # filled more since, and those events are on their way). Taking them could count a
            # fill twice: nothing is taken, the gap is reported.
            reasons[coid] = "the broker's executions do not match the journaled fills"
        elif new:
            journal.record_fills(new)  # per order: one transaction, rows and events together
            log.info("order %s: %d fills recovered from the broker", coid, len(new))
    return [
        FillGap(
            stored.client_order_id,
            stored.symbol,
            Decimal(stored.filled_quantity),
            journaled,
            unreadable
            or reasons.get(stored.client_order_id, "the broker did not list these executions"),
        )
        for stored, journaled, _ in journal.fill_shortfalls(asked)  # what is still short
    ]


async def _executions(broker: Broker, client_order_ids: list[str]) -> list[Fill]:
    method = getattr(broker, "executions", None)
    if method is None:
        raise BrokerError(f"{broker.name} cannot list executions", code="executions_unsupported")
    found: list[Fill] = await method(client_order_ids)
    return found


def _report(journal: Journal, gap: FillGap) -> None:
    log.warning(
        "order %s (%s): %s filled but its journaled fills add up to %s; %s missing: %s",
        gap.client_order_id,
        gap.symbol,
        gap.filled_quantity,
        gap.journaled,
        gap.missing,
        gap.reason,
    )
    journal.record_event("fill_gap", gap.as_json())
