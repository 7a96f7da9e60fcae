"""The REST side of orders a strategy manages: find, cancel, replace, brackets, missed fills.

Alpaca's shapes this module relies on (docs.alpaca.markets, "Orders" and "Account Activities"):

- ``PATCH /v2/orders/{id}`` (alpaca-py ``replace_order_by_id``) answers a NEW order (new id,
  ``replaces`` = the old id, a client_order_id of Alpaca's making); the old order goes
  ``pending_replace`` then ``replaced`` (``replaced_by`` = the new id). The replacing order
  trades its ``qty`` from zero (alpacahq/Alpaca-API#165: a partially filled order replaced
  without ``qty`` would trade its whole original quantity again), so ``qty`` is always sent
  when something filled: what remains of the gateway's quantity. Alpaca refuses (422) an order
  that is ``accepted``, ``pending_new``, ``pending_cancel`` or ``pending_replace``; a refusal
  leaves the original order as it was.
- ``DELETE /v2/orders/{id}`` answers 204 (taken; the stream says ``canceled``, or a fill that
  raced it), 422 "order is not cancelable" for a final order, 404 for an unknown id.
- ``POST /v2/orders`` with ``order_class`` ``bracket`` (``take_profit`` and ``stop_loss``) or
  ``oto`` (one of them) answers the entry with its exits under ``legs``: a take profit is the
  leg of type ``limit``, a stop loss the one of type ``stop`` / ``stop_limit``.
- Missed fills come from ``GET /v2/account/activities/FILL?after=...&direction=asc``, not from
  ``GET /v2/orders?status=all&after=...``: the orders list filters ``after`` on the time an
  order was *submitted*, so a limit order resting since before the drop that filled during it
  would be missed; the activities are filtered on the execution's time and give each execution
  with its own quantity, price and cumulative quantity (``cum_qty``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alpaca.trading.client import TradingClient

from brokers.alpaca.changes import NOT_OPEN, bracket_request, replace_request
from brokers.alpaca.ledger import Ledger, Raw
from brokers.alpaca.models import UnparsableAnswer
from brokers.base import (
    BrokerOrder,
    OrderChange,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    to_decimal,
)
from brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    NotSent,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)

log = logging.getLogger(__name__)

Call = Callable[..., Awaitable[Any]]
MAX_CHAIN = 50  # replaces followed at most, so a malformed answer cannot loop forever
ACTIVITY_PAGE = 100  # Alpaca's maximum page size for account activities


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _mapping(answer: Any, what: str) -> Raw:
    if not isinstance(answer, Mapping):
        raise UnparsableAnswer(f"{what}: expected an object, got {type(answer).__name__}")
    return answer


class Lifecycle:
    """Order flows over several requests; ``call`` runs one SDK call off the event loop and
    translates its errors (the adapter's ``_call``)."""

    def __init__(self, trading: TradingClient, call: Call, ledger: Ledger):
        self._trading = trading
        self._call = call
        self.ledger = ledger

    # ------------------------------------------------------------------ finding orders

    async def by_id(self, order_id: str) -> Raw:
        return _mapping(await self._call(self._trading.get, f"/orders/{order_id}"), "order")

    async def resolve(self, raw: Raw, at_hand: Mapping[str, Raw] | None = None) -> None:
        """Teach the ledger the chain ``raw`` ends (its ``replaces``, back to the first order
        or to one the ledger knows), so it is reported under the gateway's client_order_id.
        Orders in ``at_hand`` (the same list answer) are not asked for again."""
        if not raw.get("replaces") or self.ledger.knows(str(raw.get("id"))):
            return
        chain = [raw]
        while len(chain) < MAX_CHAIN:
            previous = str(chain[0].get("replaces") or "")
            if not previous:
                break
            known = (at_hand or {}).get(previous)
            chain.insert(0, known if known is not None else await self.by_id(previous))
            if self.ledger.knows(previous):
                break
        for old, new in itertools.pairwise(chain):
            self.ledger.link(old, new)

    async def follow(self, raw: Raw) -> Raw:
        """The live order of ``raw``'s chain: ``replaced_by`` followed to its end."""
        for _ in range(MAX_CHAIN):
            successor = raw.get("replaced_by")
            if raw.get("status") != "replaced" or not successor:
                return raw
            new = await self.by_id(str(successor))
            self.ledger.link(raw, new)
            raw = new
        raise UnparsableAnswer(f"order {raw.get('id')}: more than {MAX_CHAIN} replaces")

    async def find(self, client_order_id: str) -> Raw | None:
        """The live Alpaca order of a gateway order, or None. One request for an order never
        replaced; a replaced one is followed through ``replaced_by``."""
        live = self.ledger.live_id(client_order_id)
        try:
            if live is not None:
                raw = await self.by_id(live)
            else:
                raw = _mapping(
                    await self._call(self._trading.get_order_by_client_id, client_order_id),
                    "order",
                )
        except OrderNotFound:
            return None
        await self.resolve(raw)
        return await self.follow(raw)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        raw = await self.find(client_order_id)
        return None if raw is None else self.ledger.view(raw)

    async def views(self, raws: Iterable[Raw]) -> list[BrokerOrder]:
        """Orders of a list answer in the gateway's terms (replacing orders resolved), one per
        gateway order: while a replace is pending Alpaca lists the old order and the new one,
        and only the new one is the gateway's order. An order without a quantity (a notional
        order placed outside the gateway) cannot be a ``BrokerOrder``: it is logged loudly and
        left out, never guessed."""
        kept: dict[str, Raw] = {}
        for raw in raws:
            if raw.get("qty") is None and raw.get("notional"):
                log.warning("order %s is notional (no qty): left out of the list", raw.get("id"))
                continue
            kept[str(raw.get("id"))] = raw
        for raw in kept.values():
            await self.resolve(raw, kept)
        views: dict[str, BrokerOrder] = {}
        for raw in kept.values():
            order = self.ledger.view(raw)
            head = self.ledger.live_id(order.client_order_id)
            if order.client_order_id not in views or order.broker_order_id == head:
                views[order.client_order_id] = order
        return list(views.values())

    async def trade_update(self, data: Raw) -> list[OrderEvent]:
        """One trade update in the gateway's terms (see ``alpaca_ledger``); a replacing order
        the ledger does not know (after a restart) is traced back through REST first."""
        raw = data.get("order")
        if isinstance(raw, Mapping):
            try:
                await self.resolve(raw)
            except BrokerError as exc:
                log.error("alpaca: could not trace order %s back: %s", raw.get("id"), exc)
        return self.ledger.trade_update(data)

    # ------------------------------------------------------------------ cancel and replace

    async def cancel(self, client_order_id: str) -> None:
        """Look the order up by client_order_id (through its replaces), then DELETE it."""
        raw = await self.find(client_order_id)
        if raw is None:
            raise OrderNotFound(f"no order with client_order_id {client_order_id}")
        order = self.ledger.view(raw)
        if order.status is OrderStatus.CANCELED:
            # Already what we want (also: a retry after our own DELETE's answer was lost).
            log.info("alpaca: order %s is already canceled", order.broker_order_id)
            return
        if not order.is_open:
            raise OrderRejected(
                f"order {client_order_id} is {order.status}: not cancelable", code=NOT_OPEN
            )
        try:
            await self._call(self._trading.cancel_order_by_id, order.broker_order_id)
        except OrderRejected as exc:
            if exc.status == 422:  # "order is not cancelable": it became final meanwhile
                raise OrderRejected(exc.message, code=NOT_OPEN, status=exc.status) from exc
            raise

    async def replace(self, client_order_id: str, change: OrderChange) -> BrokerOrder:
        """One PATCH of the live order; the answer (a new Alpaca order) is linked to the
        gateway's order. A refusal raises OrderRejected and changes nothing. A look-up that
        failed sent nothing: NotSent, so the retry layer may try the replace again."""
        try:
            raw = await self.find(client_order_id)
        except BrokerUnavailable as exc:
            if isinstance(exc, NotSent | RateLimited):
                raise
            raise NotSent(
                f"replace {client_order_id}: the look-up failed, nothing was sent ({exc.message})",
                code=exc.code,
                status=exc.status,
            ) from exc
        if raw is None:
            raise OrderNotFound(f"no order with client_order_id {client_order_id}")
        order = self.ledger.view(raw)
        request = replace_request(order, change)
        answer = await self._call(self._trading.replace_order_by_id, order.broker_order_id, request)
        try:
            new = _mapping(answer, "replace answer")
            self.ledger.link(raw, new)
            return self.ledger.view(new)
        except UnparsableAnswer as exc:
            raise BrokerUnavailable(f"replace answer unreadable: {exc}") from exc

    # ------------------------------------------------------------------ brackets

    async def submit_bracket(
        self,
        entry: OrderRequest,
        stop_loss: OrderRequest | None,
        take_profit: OrderRequest | None,
    ) -> list[BrokerOrder]:
        """One POST: bracket with both exits, oto with one. Returns the entry, then the legs in
        the order given (stop loss, take profit), each under the client_order_id asked for."""
        request = bracket_request(entry, stop_loss, take_profit)
        answer = await self._call(self._trading.submit_order, request)
        try:
            parent = _mapping(answer, "bracket answer")
            legs = self._pick_legs(
                parent,
                None if stop_loss is None else stop_loss.client_order_id,
                None if take_profit is None else take_profit.client_order_id,
            )
            return [self.ledger.view(raw) for raw in (parent, *legs)]
        except UnparsableAnswer as exc:
            raise BrokerUnavailable(f"bracket answer unreadable: {exc}") from exc

    async def adopt_bracket(
        self, entry_id: str, stop_loss_id: str | None, take_profit_id: str | None
    ) -> list[BrokerOrder]:
        """After a restart: read the bracket of gateway order ``entry_id`` back from Alpaca
        (its ``legs``) and report its legs under the gateway's client_order_ids again, as
        ``submit_bracket`` answered. One GET; two when the answer does not nest the legs;
        more for a leg replaced since (followed to its live order)."""
        parent = await self.find(entry_id)
        if parent is None:
            raise OrderNotFound(f"no order with client_order_id {entry_id}")
        if not parent.get("legs"):
            nested = await self._call(
                self._trading.get, f"/orders/{parent.get('id')}", {"nested": "true"}
            )
            parent = _mapping(nested, "order")
        legs = [
            await self.follow(raw) for raw in self._pick_legs(parent, stop_loss_id, take_profit_id)
        ]
        return [self.ledger.view(raw) for raw in (parent, *legs)]

    def _pick_legs(
        self, parent: Raw, stop_loss_id: str | None, take_profit_id: str | None
    ) -> list[Raw]:
        """The legs asked for, stop loss first, each aliased to the gateway's id; told apart
        by their type (a stop loss is a stop or stop_limit, a take profit a limit), never by
        their place in Alpaca's list."""
        legs = parent.get("legs")
        name = parent.get("client_order_id")
        if not isinstance(legs, list) or not legs:
            raise UnparsableAnswer(f"bracket {name}: no legs")
        picked = []
        for wanted, types in ((stop_loss_id, ("stop", "stop_limit")), (take_profit_id, ("limit",))):
            if wanted is None:
                continue
            leg = next((_mapping(g, "leg") for g in legs if g.get("type") in types), None)
            if leg is None:
                raise UnparsableAnswer(f"bracket {name}: the leg for {wanted} is missing")
            self.ledger.alias(str(leg.get("id")), wanted)
            picked.append(leg)
        return picked

    # ------------------------------------------------------------------ missed fills

    async def fill_activities(self, since: datetime) -> list[Raw]:
        """Every FILL activity after ``since``, oldest first (paged by ``page_token``)."""
        params: dict[str, Any] = {
            "after": _iso(since),
            "direction": "asc",
            "page_size": ACTIVITY_PAGE,
        }
        found: list[Raw] = []
        while True:
            page = await self._call(self._trading.get, "/account/activities/FILL", params)
            if not isinstance(page, list):
                raise UnparsableAnswer(f"expected a list of activities, got {type(page)}")
            found.extend(_mapping(item, "activity") for item in page)
            if len(page) < ACTIVITY_PAGE:
                return found
            params = {**params, "page_token": str(found[-1].get("id"))}

    async def recover_gap(self, since: datetime) -> list[OrderEvent] | None:
        """``recover``, or None (logged) when it failed: the gateway also reconciles on the
        ConnectionEvent, and the caller asks again after the next reconnect."""
        try:
            events = await self.recover(since)
        except BrokerError as exc:
            log.error("alpaca: fills missed since %s could not be fetched: %s", since, exc)
            return None
        if events:
            log.info("alpaca: %d order events recovered after the reconnect", len(events))
        return events

    async def recover(self, since: datetime) -> list[OrderEvent]:
        """The fills executed since ``since`` that were not reported, as OrderEvents: each
        order's executions in order, the last event with the order's state now."""
        per_order: dict[str, list[Raw]] = {}
        for activity in await self.fill_activities(since):
            per_order.setdefault(str(activity.get("order_id")), []).append(activity)
        events: list[OrderEvent] = []
        for order_id, activities in per_order.items():
            newest = max(to_decimal(a.get("cum_qty") or 0) for a in activities)
            if newest <= self.ledger.reported_qty(order_id):
                continue  # the stream reported all of it before the drop
            raw = await self.by_id(order_id)
            await self.resolve(raw)
            live = await self.follow(raw)
            events.extend(self.ledger.recovered(raw, activities, live))
        return events
