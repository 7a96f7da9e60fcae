"""A scripted requests transport: the real alpaca-py and adapter code run, the network does not.

Used where a cassette cannot say it: an answer lost to a timeout, a slow answer, a rate-limit
reset computed from the clock. ``AlpacaBroker(..., transport=ScriptedTransport(...))`` mounts it
on both REST clients' sessions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or str for a raw body
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # time.sleep in the worker thread, like a slow server
    # When set, the answer waits (in the worker thread) until the test opens the gate; a gate
    # still shut after ``GATE_LIMIT_S`` fails the request: the test could not run meanwhile.
    gate: threading.Event | None = None


GATE_LIMIT_S = 30.0


class ScriptedTransport(BaseAdapter):
    """Answers ``(METHOD, path)`` from a queue of ``Answer``s or exceptions, in order."""

    def __init__(self, script: dict[tuple[str, str], list[Answer | BaseException]]):
        super().__init__()
        self._script = {key: deque(items) for key, items in script.items()}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for m, p in self.calls if m == method and (path is None or p == path))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = requests.utils.urlparse(request.url or "")
        key = (str(request.method), url.path)
        with self._lock:
            self.calls.append(key)
            queue = self._script.get(key)
            if not queue:
                raise AssertionError(f"unscripted request {key} (calls so far: {self.calls})")
            action = queue.popleft()
        if isinstance(action, BaseException):
            raise action
        if action.delay_s:
            time.sleep(action.delay_s)
        if action.gate is not None and not action.gate.wait(GATE_LIMIT_S):
            raise AssertionError(f"{key}: the gate was never opened (was the event loop blocked?)")
        response = requests.Response()
        response.status_code = action.status
        response.reason = requests.status_codes._codes.get(action.status, ("",))[0].upper()
        text = (
            action.body
            if isinstance(action.body, str)
            else ("" if action.body is None else json.dumps(action.body))
        )
        response._content = text.encode()
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json; charset=UTF-8", **action.headers}
        )
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass
