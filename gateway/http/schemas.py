"""Answer bodies the API declares in its OpenAPI schema beyond the gateway's models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class KillFailure(BaseModel):
    order_id: str
    reason: str


class KillResponse(BaseModel):
    cancelled: int
    failed: list[KillFailure]
    flattened: list[str] = []
    flatten_failed: dict[str, str] = {}  # symbol -> why it was not flattened
    elapsed_ms: float
    halt_ms: float
    status: dict[str, Any]


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after_s: float | None = None


class Detail(BaseModel):
    """A refusal of the request itself (a missing or wrong token)."""

    detail: str


class FieldError(BaseModel):
    field: str
    reason: str


class InvalidRequest(BaseModel):
    """422: the body (or a query) did not validate; every field named with its reason."""

    code: str
    message: str
    errors: list[FieldError]


# What every route that takes a token may answer besides its own answers.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "missing or unknown bearer token"},
    403: {"model": Detail, "description": "a valid token of the wrong role"},
    413: {"model": ErrorBody, "description": "body_too_large: the body exceeds 1 MiB"},
    422: {"model": InvalidRequest, "description": "invalid_request: every field and why"},
}
