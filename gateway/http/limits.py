"""A cap on request bodies, checked before anything reads them.

A body is read (and parsed as JSON) before the route's token check runs, on the event loop that
also runs the kill switch: without a cap, anyone who can reach the port could make the gateway
hold and parse hundreds of megabytes, its loop blocked for seconds and its memory in the
gigabytes. The largest body a client needs (a list of simulated quotes) is a few kilobytes.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        status_code=413,
        content={"code": "body_too_large", "message": f"request body larger than {limit} bytes"},
    )


async def body_too_large(request: Request, exc: Exception) -> JSONResponse:
    """The answer when a body without a Content-Length grew past the cap while being read."""
    assert isinstance(exc, BodyTooLarge)
    return too_large(MAX_BODY_BYTES)


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length before it is
    read, or (chunked) as soon as what arrived passes the cap."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            await too_large(self._max)(scope, receive, send)
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise BodyTooLarge(self._max)
            return message

        await self._app(scope, capped, send)
