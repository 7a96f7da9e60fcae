"""The resume rules: who may lift a halt, and when.

    ResumeRefused     code cooldown_active | trigger_active (HTTP 409, with retry_after_s)
    ResumeForbidden   force without the right auth code, or with none configured (HTTP 403)

A plain resume is refused until the cooldown, counted from the halt's first `since`, has passed,
and then while the triggering measure is still past its emergency threshold. A forced resume
with the right auth code overrides both, and says which it overrode.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from gateway.safety.halt_state import HaltRecord

__all__ = ["ResumeForbidden", "ResumeKind", "ResumeRefused", "check_auth_code", "judge_resume"]

logger = logging.getLogger("gateway.safety.halt")

ResumeKind = Literal["resume", "forced_resume"]


class ResumeRefused(Exception):
    """Resume refused for now (HTTP 409): `code` is cooldown_active or trigger_active."""

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return body


class ResumeForbidden(Exception):
    """A forced resume without the right auth code, or with none configured (HTTP 403)."""


def check_auth_code(given: str | None, expected: str | None, by: str) -> None:
    """ResumeForbidden unless `given` matches a configured `expected` (constant-time compare)."""
    if not expected:
        logger.warning("forced resume by %s refused: no auth code is configured", by)
        raise ResumeForbidden("forced resume is disabled: no resume auth code is configured")
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        logger.warning("forced resume by %s refused: wrong or missing auth code", by)
        raise ResumeForbidden("forced resume needs the right auth_code")


def judge_resume(
    record: HaltRecord,
    *,
    now: datetime,
    cooldown: timedelta,
    force: bool,
    trigger_active: Callable[[HaltRecord], bool] | None,
) -> tuple[ResumeKind, str]:
    """The kind of resume allowed now and, for a forced one, what it overrode.

    Raises ResumeRefused (cooldown first, then the trigger) for a plain resume. The auth code of
    a forced resume is checked before this, by `check_auth_code`.
    """
    allowed_at = record.since + cooldown
    left = (allowed_at - now).total_seconds()
    if force:
        active, why_active = _trigger_still_active(record, trigger_active)
        overrode = []
        if left > 0:
            overrode.append(f"cooldown_active ({left:.1f}s left)")
        if active:
            overrode.append(f"trigger_active ({why_active})")
        return "forced_resume", "overrode: " + (", ".join(overrode) if overrode else "nothing")
    if left > 0:
        raise ResumeRefused(
            "cooldown_active",
            f"resume is allowed from {allowed_at.isoformat()} ({left:.1f}s from now)",
            retry_after_s=left,
        )
    active, why_active = _trigger_still_active(record, trigger_active)
    if active:
        raise ResumeRefused(
            "trigger_active", f"the {record.trigger.value} trigger is still active: {why_active}"
        )
    return "resume", ""


def _trigger_still_active(
    record: HaltRecord, trigger_active: Callable[[HaltRecord], bool] | None
) -> tuple[bool, str]:
    if trigger_active is None:
        return False, ""
    try:
        active = trigger_active(record)
    except Exception as exc:
        # Cannot tell whether the measure recovered: stay on the safe side.
        logger.exception("trigger check for %s failed", record.trigger.value)
        return True, f"the check failed: {type(exc).__name__}: {exc}"
    if not active:
        return False, ""
    if record.measure is not None and record.threshold is not None:
        return True, (
            f"still past its emergency threshold (tripped at {record.measure:g}"
            f" >= {record.threshold:g})"
        )
    return True, "still past its emergency threshold"
