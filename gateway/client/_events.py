"""The event stream as a client reads it: typed events, the SSE text parsed line by line, and
which failures a follower rides out by reconnecting (with ``Last-Event-ID``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gateway.models import Decision, FillRecord, Order


class StateChange(BaseModel):
    """A ``state`` event: the risk state and the halt in force (null when none)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    state: Literal["active", "reduce_only", "halted"]
    halt: dict[str, Any] | None = None
    reduce_only: str | None = None


EventData = Decision | Order | FillRecord | StateChange | dict[str, Any]

_MODELS: dict[str, type[Decision | Order | FillRecord | StateChange]] = {
    "decision": Decision,
    "order": Order,
    "fill": FillRecord,
    "state": StateChange,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One event: ``id`` (the journal's sequence number), ``type`` (decision, order, fill,
    state) and ``data``, the model of its type (a plain dict for a type this client does not
    know yet)."""

    id: int
    type: str
    data: EventData


def parse_event(event_id: int, kind: str, text: str) -> Event:
    raw = json.loads(text)
    model = _MODELS.get(kind)
    return Event(event_id, kind, raw if model is None else model.model_validate(raw))


class SSEParser:
    """Server-Sent Events, a line at a time. ``position`` is the last id seen, from an event
    or from a bare ``id:`` (where a stream from now begins): what a reconnect sends."""

    def __init__(self, position: int | None):
        self.position = position
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> Event | None:
        """The event this line completes, if any."""
        if line.startswith(":"):
            return None  # a comment: the keepalive
        if line:
            name, _, value = line.partition(":")
            self._fields[name] = value.removeprefix(" ")
            return None
        fields, self._fields = self._fields, {}
        if "id" in fields and fields["id"].isdigit():
            self.position = int(fields["id"])
        if "data" not in fields or "event" not in fields or self.position is None:
            return None
        return parse_event(self.position, fields["event"], fields["data"])


# Answers a follower waits out and reconnects after: the gateway starting, stopping, or
# briefly unable to read its journal. Anything else (401, 403, 409, 422) is the caller's.
RETRY_STATUSES = frozenset({502, 503, 504})
