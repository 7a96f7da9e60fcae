"""What the Alpaca adapter remembers of orders, so that it speaks in the gateway's terms.

Pure bookkeeping, no I/O (``broker.py`` and ``lifecycle.py`` feed it what Alpaca answered).

Replace chains
    Alpaca replaces an order by a NEW order: a new id and a client_order_id of Alpaca's making;
    the old order ends ``replaced`` with ``replaced_by``, the new one names it in ``replaces``.
    The gateway keeps its client_order_id through a replace, so every order of a chain is
    reported under the client_order_id of its first order. The links come from Alpaca's own
    ``replaces`` / ``replaced_by`` fields (after a restart ``lifecycle`` follows them again), so
    nothing here is the only copy of a fact.
    The replacing order trades its ``qty`` from zero (the adapter sends what remains to fill),
    so the gateway's view of a chain adds what its replaced orders filled: quantity = carried +
    qty, filled = carried + filled_qty, the average price weighted over both.

Reported fills
    Per Alpaca order, the cumulative quantity (and average price) last reported. A fill is
    reported as the delta against it, once: an update seen twice, or a recovered fill that the
    stream delivered already, reports nothing. ``fill_id`` is Alpaca's ``execution_id`` when the
    update carries one for exactly that delta, else ``{order id}:{cumulative qty}`` (stable: the
    same fill gets the same id however it is learnt).

Leg aliases
    A bracket's legs are Alpaca orders with client_order_ids of Alpaca's making; each is
    reported under the client_order_id the gateway gave its leg.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.alpaca.models import UnparsableAnswer, parse_order, parse_ts
from brokers.base import BrokerOrder, Fill, OrderEvent, OrderStatus, to_decimal

log = logging.getLogger(__name__)

ZERO = Decimal(0)
Raw = Mapping[str, Any]

# Statuses after which an order trades no more (``replaced`` aside: its successor goes on).
_ENDED = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day"})
# Events whose name says no more than the order's status (other names become the reason).
_PLAIN_EVENTS = frozenset(
    {"new", "fill", "partial_fill", "canceled", "expired", "pending_new", "pending_cancel"}
)


def _num(raw: Raw, name: str) -> Decimal:
    value = raw.get(name)
    if value is None or value == "":
        return ZERO
    try:
        return to_decimal(value)
    except ValueError as exc:
        raise UnparsableAnswer(f"{name}: not a number: {value!r}") from exc


@dataclass
class _Chain:
    """The Alpaca orders that are one gateway order, oldest first; ``head`` is the live one."""

    client_order_id: str
    head: str
    # replaced (or superseded) members: id -> (filled qty, filled qty * avg price)
    settled: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    raws: dict[str, Raw] = field(default_factory=dict)

    def carried(self, order_id: str) -> tuple[Decimal, Decimal]:
        qty = sum((q for i, (q, _) in self.settled.items() if i != order_id), ZERO)
        notional = sum((n for i, (_, n) in self.settled.items() if i != order_id), ZERO)
        return qty, notional


class Ledger:
    def __init__(self) -> None:
        self._chain_of: dict[str, _Chain] = {}  # every member's Alpaca id -> its chain
        self._chains: dict[str, _Chain] = {}  # gateway client_order_id -> chain
        self._alias: dict[str, str] = {}  # Alpaca id of a leg -> the gateway's client_order_id
        self._alias_ids: dict[str, str] = {}  # the gateway's leg client_order_id -> Alpaca id
        self._reported: dict[str, tuple[Decimal, Decimal]] = {}  # id -> (cum qty, notional)
        self._last_status: dict[str, OrderStatus] = {}  # gateway client_order_id -> status

    # ------------------------------------------------------------------ who owns what

    def owner(self, raw: Raw) -> str:
        """The gateway's client_order_id for an Alpaca order."""
        order_id = str(raw.get("id"))
        chain = self._chain_of.get(order_id)
        if chain is not None:
            return chain.client_order_id
        return self._alias.get(order_id) or str(raw.get("client_order_id"))

    def knows(self, order_id: str) -> bool:
        return order_id in self._chain_of or order_id in self._alias

    def live_id(self, client_order_id: str) -> str | None:
        """The Alpaca id to look at for a gateway order this ledger knows (replaced or a leg);
        None for a plain order (looked up by its own client_order_id)."""
        chain = self._chains.get(client_order_id)
        if chain is not None:
            return chain.head
        return self._alias_ids.get(client_order_id)

    def alias(self, order_id: str, client_order_id: str) -> None:
        """Report Alpaca order ``order_id`` (a bracket leg) as ``client_order_id``."""
        self._alias[order_id] = client_order_id
        self._alias_ids[client_order_id] = order_id

    def link(self, old: Raw, new: Raw | str) -> None:
        """``old`` was replaced by ``new`` (its answer, or only its id). Learnt late (the
        ``replaced`` event after a further replace), it updates what ``old`` filled and leaves
        the chain's live order where it is."""
        old_id = str(old.get("id"))
        new_id = new if isinstance(new, str) else str(new.get("id"))
        chain = self._chain_of.get(old_id)
        if chain is None:
            chain = _Chain(client_order_id=self.owner(old), head=old_id)
            self._chain_of[old_id] = chain
            self._chains[chain.client_order_id] = chain
        self._settle(chain, old)
        if chain.head == old_id:
            chain.head = new_id
        self._chain_of[new_id] = chain
        if not isinstance(new, str):
            chain.raws.setdefault(new_id, new)

    @staticmethod
    def _settle(chain: _Chain, old: Raw) -> None:
        filled = _num(old, "filled_qty")
        chain.settled[str(old.get("id"))] = (filled, filled * _num(old, "filled_avg_price"))
        chain.raws[str(old.get("id"))] = old

    def unlink(self, refused: Raw) -> Raw | None:
        """A replacing order was refused (the one it replaces filled first, or the venue said
        no): the chain's head goes back to the order it replaces; returns that order's last
        known answer."""
        chain = self._chain_of.get(str(refused.get("id")))
        previous = str(refused.get("replaces") or "")
        if chain is None or chain.head not in (previous, str(refused.get("id"))):
            return None
        chain.settled.pop(previous, None)
        chain.head = previous
        return chain.raws.get(previous)

    # ------------------------------------------------------------------ views

    def view(self, raw: Raw) -> BrokerOrder:
        """The gateway's view of an Alpaca order: its client_order_id, and for a replacing
        order the quantities of the whole chain."""
        order = parse_order(raw)
        order_id = order.broker_order_id
        client_order_id = self.owner(raw)
        chain = self._chain_of.get(order_id)
        if chain is not None:
            chain.raws[order_id] = raw
        carried, notional = chain.carried(order_id) if chain is not None else (ZERO, ZERO)
        if client_order_id == order.client_order_id and carried == 0:
            return order
        filled = carried + order.filled_quantity
        avg = order.avg_fill_price
        if carried > 0:
            own = order.filled_quantity * (order.avg_fill_price or ZERO)
            avg = (notional + own) / filled
        return order.model_copy(
            update={
                "client_order_id": client_order_id,
                "quantity": carried + order.quantity,
                "filled_quantity": filled,
                "avg_fill_price": avg,
            }
        )

    def current(self, raw: Raw) -> BrokerOrder:
        """The gateway's order after an update of ``raw``. An update of an order a replace
        superseded shows the chain's live order (with what the old one filled meanwhile);
        when the old order filled or ended before the replace landed, Alpaca refuses the
        replacing order, so the old one is the gateway's order again."""
        order_id = str(raw.get("id"))
        chain = self._chain_of.get(order_id)
        if chain is None or order_id not in chain.settled:
            return self.view(raw)
        if raw.get("status") in _ENDED:
            chain.settled.pop(order_id)
            chain.head = order_id
            return self.view(raw)
        self._settle(chain, raw)
        live = chain.raws.get(chain.head)
        return self.view(live if live is not None else raw)

    # ------------------------------------------------------------------ fills

    def fill(
        self,
        raw: Raw,
        *,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        execution_id: str = "",
        ts: datetime | None = None,
    ) -> Fill | None:
        """The fill an update of ``raw`` brings beyond what was reported, or None.

        ``qty`` / ``price`` are the update's own (one execution); when the cumulative quantity
        moved by more than ``qty`` (an update was missed), the whole delta is reported at the
        price that makes the order's average come out right."""
        order_id = str(raw.get("id"))
        cum = _num(raw, "filled_qty")
        done, done_notional = self._reported.get(order_id, (ZERO, ZERO))
        if cum <= done:
            return None
        delta = cum - done
        avg = _num(raw, "filled_avg_price")
        if price is not None and price > 0 and (qty is None or qty == delta):
            fill_price = price
        elif avg > 0:
            fill_price = (avg * cum - done_notional) / delta
            if qty is not None:
                log.warning(
                    "alpaca order %s: filled %s since the last report, the update says %s: "
                    "reported as one fill at the price the average implies",
                    order_id,
                    delta,
                    qty,
                )
        else:
            raise UnparsableAnswer(f"order {order_id}: filled {cum} without a price")
        own_id = execution_id if execution_id and qty == delta else ""
        try:
            fill = Fill(
                client_order_id=self.owner(raw),
                broker_order_id=order_id,
                symbol=str(raw.get("symbol") or ""),
                side=raw.get("side"),
                quantity=delta,
                price=fill_price,
                ts=ts or parse_ts(raw.get("filled_at") or raw.get("updated_at")),
                fill_id=own_id or f"{order_id}:{cum.normalize():f}",
            )
        except ValueError as exc:  # pydantic's ValidationError: a side or price out of shape
            raise UnparsableAnswer(f"order {order_id}: fill not understood: {exc}") from exc
        # Counted as reported only once it could be reported: a malformed update loses nothing.
        self._reported[order_id] = (cum, done_notional + delta * fill_price)
        return fill

    def reported_qty(self, order_id: str) -> Decimal:
        return self._reported.get(order_id, (ZERO, ZERO))[0]

    def recovered(
        self, raw: Raw, activities: list[Raw], live: Raw | None = None
    ) -> list[OrderEvent]:
        """Events for FILL activities of order ``raw`` (its state now) that were not reported:
        one per execution, at its own price, with the order as it stood after it; the last
        event carries the state now of ``live`` (the order replacing ``raw``, if it was
        replaced meanwhile: a replaced order is no cancel of the gateway's), else of ``raw``."""
        parse_order(raw)  # a malformed answer raises before any fill is counted
        events: list[OrderEvent] = []
        quantity = _num(raw, "qty")
        for activity in activities:
            cum = _num(activity, "cum_qty")
            stood = {
                **raw,
                "filled_qty": activity.get("cum_qty"),
                "status": "filled" if cum >= quantity else "partially_filled",
            }
            fill = self.fill(
                stood,
                qty=_num(activity, "qty"),
                price=_num(activity, "price"),
                ts=parse_ts(activity.get("transaction_time")),
            )
            if fill is not None:
                cum_qty, notional = self._reported[str(raw.get("id"))]
                stood["filled_avg_price"] = str(notional / cum_qty)  # as it stood then
                events.append(self._event(self.view(stood), fill, "recovered"))
        rest = self.fill(raw)  # executed after the activities were read: at the average's price
        now = self.view(live or raw)
        if rest is not None:
            events.append(self._event(now, rest, "recovered"))
        elif events:
            events[-1] = self._event(now, events[-1].fill, "recovered")
        return events

    # ------------------------------------------------------------------ stream updates

    def trade_update(self, data: Raw) -> list[OrderEvent]:
        """The events one ``trade_updates`` message means for the gateway."""
        event = str(data.get("event") or "")
        raw = data.get("order")
        if not event or not isinstance(raw, Mapping):
            raise UnparsableAnswer(f"trade update without event or order: {dict(data)!r}")
        if event == "replaced":
            return self._replaced(raw)
        if event == "rejected" and raw.get("replaces") and self.knows(str(raw.get("id"))):
            return self._replace_refused(raw)
        order = self.current(raw)  # first: a malformed order raises before a fill is counted
        fill = self.fill(
            raw,
            qty=_num(data, "qty") if data.get("qty") is not None else None,
            price=_num(data, "price") if data.get("price") is not None else None,
            execution_id=str(data.get("execution_id") or ""),
            ts=parse_ts(data["timestamp"]) if data.get("timestamp") else None,
        )
        if event in {"fill", "partial_fill"} and fill is None:
            return []  # a fill reported already (a replay, or recovered after a reconnect)
        if event == "pending_replace":
            # Nothing changed yet: the order keeps the status it had (filled may have moved).
            previous = self._last_status.get(order.client_order_id)
            if previous is not None and fill is None:
                order = order.model_copy(update={"status": previous})
        return [self._event(order, fill, None if event in _PLAIN_EVENTS else event)]

    def _event(self, order: BrokerOrder, fill: Fill | None, reason: str | None) -> OrderEvent:
        self._last_status[order.client_order_id] = order.status
        return OrderEvent(order=order, fill=fill, reason=reason)

    def _replaced(self, old: Raw) -> list[OrderEvent]:
        """The old order of a replace is done: NOT a cancel of the gateway's order, which lives
        on in the chain's live order (reported now when its answer is known)."""
        new_id = old.get("replaced_by")
        if not new_id:
            log.warning("alpaca order %s replaced, by an order it does not name", old.get("id"))
            return []
        parse_order(old)  # a malformed order raises before its fill is counted
        fill = self.fill(old)  # a fill of the old order not reported before it was replaced
        self.link(old, str(new_id))
        chain = self._chain_of[str(old.get("id"))]
        live = chain.raws.get(chain.head)
        if live is None:
            if fill is None:
                return []  # the replacing order's own update will say it
            # The replacing order is unknown yet: the fill goes with the old order's terms.
            live = {**old, "status": "partially_filled"}
        return [self._event(self.view(live), fill, "replaced")]

    def _replace_refused(self, refused: Raw) -> list[OrderEvent]:
        previous = self.unlink(refused)
        log.warning(
            "alpaca refused replacing order %s (it replaces %s): the order keeps its terms",
            refused.get("id"),
            refused.get("replaces"),
        )
        if previous is None:
            return []
        return [self._event(self.view(previous), None, "replace_rejected")]
