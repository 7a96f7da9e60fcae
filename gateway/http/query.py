"""Query strings: a parameter a route does not know is a 422 naming it, never silently
ignored (a misspelt filter would otherwise answer more than the client asked for)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError


def known_params(*names: str) -> Callable[[Request], None]:
    """A dependency refusing every query parameter but ``names``."""
    allowed = frozenset(names)

    def check(request: Request) -> None:
        unknown = [key for key in request.query_params if key not in allowed]
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", key),
                        "msg": "unknown query parameter",
                        # Not "extra_forbidden": that names a body's unknown field.
                        "type": "extra",
                    }
                    for key in dict.fromkeys(unknown)
                ]
            )

    return check
