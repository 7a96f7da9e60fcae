"""POST /v1/signals without the framework on the way, for the requests that need none of it.

A signal is the one request a strategy sends at rate. Through FastAPI it paid its routing (the
included routers walked in turn), the dependency solver (the bearer scheme, then the token
check), the request objects and the exception-handling layers: measured under bench/http.py
about as much again as the bare app's whole request. This ASGI middleware answers the plain
case itself: POST /v1/signals, a JSON body of a declared length, a known bearer token that
may act for the signal's strategy, a body the Signal model accepts and a ready gateway. Its
answer comes from the route's own ``answer_signal``, so the bytes are the same.

Anything else (a missing or unknown token, a body that is not JSON or does not validate, a
strategy the token is not bound to, a gateway not ready, chunked bodies) goes on to the
FastAPI route with the body it read replayed, so every refusal is the route's, word for word.
The route stays what the OpenAPI schema describes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.auth import Tokens
from gateway.http.exact_json import loads_exact
from gateway.http.routes.signals import answer_signal
from gateway.models import Signal
from gateway.service import GatewayService

SIGNALS_PATH = "/v1/signals"


class SignalFastPath:
    def __init__(self, app: ASGIApp, service: GatewayService, tokens: Tokens) -> None:
        self._app = app
        self._service = service
        self._tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != SIGNALS_PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self._app(scope, receive, send)
            return
        token, json_body = _token_and_json(scope["headers"])
        if not json_body or not token:
            await self._app(scope, receive, send)
            return
        body, ended = await _read_body(receive)
        signal = self._plain_signal(token, body) if ended else None
        if signal is None:
            await self._app(scope, _replay(body, ended, receive), send)
            return
        response = await answer_signal(self._service, signal)
        await response(scope, receive, send)

    def _plain_signal(self, token: str, body: bytes) -> Signal | None:
        """The signal when nothing about it needs the route's refusals; None otherwise."""
        principal = self._tokens.principal_of(token)
        if principal is None or not self._service.engine.ready:
            return None
        try:
            signal = Signal.model_validate(loads_exact(body), from_attributes=True)
        except Exception:
            # Whatever the body did (not JSON, an exponent no Decimal holds: InvalidOperation,
            # an invalid signal), the route's answer to it is the contract: it goes there.
            return None
        return signal if principal.may_act_for(signal.strategy) else None


def _token_and_json(headers: list[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """The bearer token as HTTPBearer reads it (the first Authorization header), and whether
    the body is declared JSON with a length (what the route parses as JSON without a doubt)."""
    token = ""
    authorization = content_type = length = None
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            # Only the first, as the route reads it: a later one must not stand in for it.
            authorization = value
            scheme, _, param = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                token = param.strip()
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and length is None:
            length = value
    # Parameters (a charset) change nothing: the route's json.loads reads the bytes' encoding.
    declared_json = content_type is not None and (
        content_type.partition(b";")[0].strip().lower() == b"application/json"
    )
    json_body = declared_json and length is not None and length.isdigit()
    return token, json_body


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and False if the client went away before it ended."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, ended: bool, receive: Receive) -> Receive:
    """A receive that gives the body read so far once, then the client's own messages."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not ended}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
