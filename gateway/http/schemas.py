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
    elapsed_ms: float
    halt_ms: float
    status: dict[str, Any]


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after_s: float | None = None
