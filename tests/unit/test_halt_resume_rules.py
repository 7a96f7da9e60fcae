"""The resume rules at their edges: what a refusal says, what a forced resume overrode, who tried.

The refusal's message is the 409's `message`; the forced resume's `detail` is journaled; the
refused auth codes are an audit trail in the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.safety.halt import HaltEvent, HaltManager, HaltStateStore, HaltTrigger
from gateway.safety.halt_resume import ResumeForbidden, ResumeRefused

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
COOLDOWN_S = 300.0
AUTH = "resume-code"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[HaltEvent]:
    return []


@pytest.fixture
def manager(tmp_path: Path, clock: Clock, events: list[HaltEvent]) -> HaltManager:
    m = HaltManager(
        HaltStateStore(tmp_path / "halt_state.json"),
        resume_cooldown_s=COOLDOWN_S,
        clock=clock,
        listeners=[events.append],
    )
    m.restore()
    return m


def test_a_cooldown_refusal_says_when_and_how_long(manager: HaltManager, clock: Clock) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    clock.advance(299.5)
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin")
    assert refused.value.to_dict() == {
        "code": "cooldown_active",
        "message": "resume is allowed from 2026-11-25T12:05:00+00:00 (0.5s from now)",
        "retry_after_s": 0.5,
    }


def test_a_trigger_refusal_has_no_retry_after(manager: HaltManager, clock: Clock) -> None:
    manager.halt("dd", HaltTrigger.DRAWDOWN, by="risk", measure=0.16, threshold=0.15)
    clock.advance(COOLDOWN_S)
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin", trigger_active=lambda record: True)
    assert refused.value.to_dict() == {
        "code": "trigger_active",
        "message": "the drawdown trigger is still active: still past its emergency threshold"
        " (tripped at 0.16 >= 0.15)",
    }


@pytest.mark.parametrize(("measure", "threshold"), [(0.2, None), (None, 0.15), (None, None)])
def test_an_active_trigger_without_both_numbers_still_refuses(
    manager: HaltManager, clock: Clock, measure: float | None, threshold: float | None
) -> None:
    manager.halt("dd", HaltTrigger.DRAWDOWN, by="risk", measure=measure, threshold=threshold)
    clock.advance(COOLDOWN_S)
    with pytest.raises(ResumeRefused) as refused:
        manager.resume(by="api:admin", trigger_active=lambda record: True)
    assert refused.value.message == (
        "the drawdown trigger is still active: still past its emergency threshold"
    )
    assert manager.is_halted


def test_a_trigger_check_that_fails_refuses_and_says_why(
    manager: HaltManager, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: object) -> bool:
        raise RuntimeError("no equity")

    manager.halt("heat", HaltTrigger.PORTFOLIO_HEAT, by="risk")
    clock.advance(COOLDOWN_S)
    with (
        caplog.at_level(logging.ERROR, logger="gateway.safety.halt"),
        pytest.raises(ResumeRefused) as refused,
    ):
        manager.resume(by="api:admin", trigger_active=broken)
    assert refused.value.message == (
        "the portfolio_heat trigger is still active: the check failed: RuntimeError: no equity"
    )
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in logged] == ["trigger check for portfolio_heat failed"]
    assert logged[0].exc_info is not None


def test_a_forced_resume_under_a_second_early_says_it_overrode_the_cooldown(
    manager: HaltManager, clock: Clock, events: list[HaltEvent]
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    clock.advance(299.5)
    manager.resume(by="api:admin", force=True, auth_code=AUTH, expected_auth_code=AUTH)
    assert events[-1].kind == "forced_resume"
    assert events[-1].detail == (
        "overrode: cooldown_active (0.5s left); blocked 0 signals while halted"
    )


def test_a_forced_resume_at_the_end_of_the_cooldown_overrode_nothing(
    manager: HaltManager, clock: Clock, events: list[HaltEvent]
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    manager.record_blocked("s1")
    clock.advance(COOLDOWN_S)
    manager.resume(
        by="api:admin",
        force=True,
        auth_code=AUTH,
        expected_auth_code=AUTH,
        trigger_active=lambda record: False,
    )
    assert events[-1].detail == "overrode: nothing; blocked 1 signal while halted"


def test_a_forced_resume_names_both_overrides(
    manager: HaltManager, clock: Clock, events: list[HaltEvent]
) -> None:
    manager.halt("dd", HaltTrigger.DRAWDOWN, by="risk", measure=0.2, threshold=0.15)
    clock.advance(10)
    manager.resume(
        by="api:admin",
        force=True,
        auth_code=AUTH,
        expected_auth_code=AUTH,
        trigger_active=lambda record: True,
    )
    assert events[-1].detail.startswith(
        "overrode: cooldown_active (290.0s left), trigger_active (still past its emergency"
        " threshold (tripped at 0.2 >= 0.15)); "
    )


@pytest.mark.parametrize(
    ("given", "expected", "message", "logged"),
    [
        (
            AUTH,
            None,
            "forced resume is disabled: no resume auth code is configured",
            "forced resume by api:admin refused: no auth code is configured",
        ),
        (
            AUTH,
            "",
            "forced resume is disabled: no resume auth code is configured",
            "forced resume by api:admin refused: no auth code is configured",
        ),
        (
            "wrong",
            AUTH,
            "forced resume needs the right auth_code",
            "forced resume by api:admin refused: wrong or missing auth code",
        ),
        (
            None,
            AUTH,
            "forced resume needs the right auth_code",
            "forced resume by api:admin refused: wrong or missing auth code",
        ),
    ],
)
def test_a_refused_auth_code_says_why_and_logs_who(
    manager: HaltManager,
    caplog: pytest.LogCaptureFixture,
    given: str | None,
    expected: str | None,
    message: str,
    logged: str,
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    with (
        caplog.at_level(logging.WARNING, logger="gateway.safety.halt"),
        pytest.raises(ResumeForbidden) as refused,
    ):
        manager.resume(by="api:admin", force=True, auth_code=given, expected_auth_code=expected)
    assert str(refused.value) == message
    assert logged in [r.getMessage() for r in caplog.records]
    assert manager.is_halted


def test_a_non_ascii_auth_code_is_compared_exactly(manager: HaltManager, clock: Clock) -> None:
    code = "clé-de-reprise"
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    with pytest.raises(ResumeForbidden):
        manager.resume(by="a", force=True, auth_code="cle-de-reprise", expected_auth_code=code)
    manager.resume(by="a", force=True, auth_code=code, expected_auth_code=code)
    assert not manager.is_halted
