"""Request bodies read with their numbers exact.

FastAPI reads a JSON body with ``json.loads``, which turns every number into a double before the
models see it: ``1.00000000000000001`` would arrive as ``1.0`` and be accepted as 1, a number the
client did not send. Here JSON numbers with a fraction or an exponent are read as ``Decimal``
(integers stay exact ints), so the models' exactness rules judge the digits that were sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def loads_exact(body: bytes) -> Any:
    """A JSON body with its numbers exact (raises json.JSONDecodeError like json.loads)."""
    return json.loads(body, parse_float=Decimal)


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """The route class of every router: its handler reads bodies with ExactJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact
