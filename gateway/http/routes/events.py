"""GET /v1/events (Server-Sent Events) and GET /v1/fills: what a strategy follows.

Every event's id is the journal's sequence number. ``Last-Event-ID: N`` (which wins: a
browser's EventSource sends it on reconnecting, with the first URL's ``?after=`` still on)
or ``?after=N`` replays every event after N from the journal, then streams; ``after=0``
replays from the start; neither streams from now, and the stream then opens with ``id: N``
alone (no data: a position, not an event) so that a reconnect resumes from there. An id
beyond the journal's last event is a 409 ``event_id_unknown``: it comes from another journal,
and streaming on would skip events.

A bound token follows only its strategies' decision, order and fill events (and every state
event); ``?strategy=S`` narrows that to S. Reads answer another strategy as if it had nothing,
as GET /v1/orders does (another strategy's order is a 404, as if unknown): a bound token naming
a strategy it is not bound to gets the state events alone, and /v1/fills an empty list. Only
acting for another strategy (a signal, an outcome) is a 403 ``strategy_not_allowed``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway.http.deps import Auth, principal
from gateway.http.exact_json import ExactJSONRoute
from gateway.http.query import known_params
from gateway.http.schemas import ErrorBody
from gateway.models import FillRecord
from gateway.service import GatewayService
from gateway.service.feed import PAGE, EventFeed, Subscription, SubscriptionEnded
from gateway.store.events import StreamEvent
from gateway.store.journal import JournalUnavailable

MAX_PAGE = 10_000  # the largest page of GET /v1/fills, as GET /v1/orders allows
MAX_ID = 2**63 - 1  # SQLite's largest integer: a bigger id could not even be compared

STRATEGY = r"^[A-Za-z0-9._:-]{1,64}$"
SYMBOL = r"^[A-Za-z0-9./-]{1,16}$"

EventId = Annotated[int | None, Query(ge=0, le=MAX_ID, description="replay after this id")]
StrategyFilter = Annotated[str | None, Query(pattern=STRATEGY)]
SymbolFilter = Annotated[str | None, Query(pattern=SYMBOL)]
LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_ID)]

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _strategies(request: Request, strategy: str | None) -> frozenset[str] | None:
    """Whose events and fills the request sees (None: everyone's; empty: nobody's)."""
    bound = principal(request).strategies
    if strategy is None:
        return bound
    if bound is not None and strategy not in bound:
        return frozenset()  # as if that strategy had nothing: its existence is not told
    return frozenset({strategy})


def _unavailable(exc: JournalUnavailable) -> JSONResponse:
    return JSONResponse(
        status_code=503, content={"code": "journal_unavailable", "message": str(exc)}
    )


def encode(events: list[StreamEvent]) -> str:
    """SSE frames: the journal's JSON is one line already (compact JSON escapes newlines)."""
    return "".join(f"id: {e.seq}\nevent: {e.type}\ndata: {e.data}\n\n" for e in events)


async def frames(feed: EventFeed, sub: Subscription, after: int | None) -> AsyncIterator[str]:
    """The stream of one subscriber: the backfill from the journal, then its live buffer."""
    last = sub.head if after is None else after
    try:
        if after is None:
            # A position, not an event (no data): a client that reconnects before any event
            # came resumes from here (EventSource keeps this id too), so it misses nothing.
            yield f"id: {last}\n\n"
        else:
            while True:
                page = feed.backfill(last, sub.strategies)
                if page:
                    last = page[-1].seq
                    yield encode(page)
                if len(page) < PAGE:
                    break
        due = time.monotonic() + feed.keepalive_s
        while True:
            # Events registered before the backfill ended may be here too: sent once only.
            fresh = [e for e in await sub.next(due - time.monotonic()) if e.seq > last]
            if fresh:
                last = fresh[-1].seq
                yield encode(fresh)
            if time.monotonic() >= due:
                due = time.monotonic() + feed.keepalive_s
                yield ": keepalive\n\n"
    except (SubscriptionEnded, JournalUnavailable):
        return  # the client resumes from the last id it got
    finally:
        feed.unsubscribe(sub)


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute, dependencies=[Depends(auth.any_token)])

    @api.get(
        "/v1/events",
        response_class=StreamingResponse,
        dependencies=[Depends(known_params("after", "strategy"))],
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
            409: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
    )
    async def get_events(
        request: Request,
        after: EventId = None,
        strategy: StrategyFilter = None,
        last_event_id: LastEventId = None,
    ) -> Response:
        strategies = _strategies(request, strategy)
        start = last_event_id if last_event_id is not None else after
        feed = service.feed
        try:
            sub = feed.subscribe(strategies)
        except JournalUnavailable as exc:
            return _unavailable(exc)
        if start is not None and start > sub.head:
            feed.unsubscribe(sub)
            message = f"event {start} is beyond the journal's last event {sub.head}"
            return JSONResponse(
                status_code=409, content={"code": "event_id_unknown", "message": message}
            )
        if start is not None:
            try:
                # The first read now, not in the stream: an archive the backfill needs that is
                # gone is a clear 503 naming it, never a stream that skips its events.
                feed.backfill(start, strategies, limit=1)
            except JournalUnavailable as exc:
                feed.unsubscribe(sub)
                return _unavailable(exc)
        return StreamingResponse(
            frames(feed, sub, start), media_type="text/event-stream", headers=_STREAM_HEADERS
        )

    @api.get(
        "/v1/fills",
        response_model=list[FillRecord],
        dependencies=[Depends(known_params("strategy", "symbol", "limit", "after"))],
        responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def get_fills(
        request: Request,
        strategy: StrategyFilter = None,
        symbol: SymbolFilter = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
        after: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    ) -> Response | list[FillRecord]:
        # Without limit and after the answer is every matching fill (DESIGN); with them, a
        # page, as GET /v1/orders pages: at most ``limit`` fills, oldest first, after the fill
        # ``after`` names (the last of the page before). The end is an empty page.
        strategies = _strategies(request, strategy)
        try:
            row = None
            if after is not None:
                if strategies is None or strategies:
                    row = service.journal.fill_row(after, strategies)
                if row is None:
                    # As an unknown ``after`` of GET /v1/orders: a 404 naming what is unknown
                    # (another strategy's fill is unknown too).
                    return JSONResponse(
                        status_code=404,
                        content={"code": "fill_not_found", "message": f"after: no fill {after}"},
                    )
            return service.journal.fills(
                strategies=strategies, symbol=symbol, limit=limit, after=row
            )
        except JournalUnavailable as exc:
            return _unavailable(exc)

    return api
