"""A halt request that is not valid is refused with a message naming the field, and changes
nothing: the caller (an API handler, the risk monitor) reports the message as given."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.safety.halt import HaltManager, HaltStateStore, HaltTrigger

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def manager(tmp_path: Path) -> HaltManager:
    m = HaltManager(HaltStateStore(tmp_path / "h.json"), resume_cooldown_s=0, clock=lambda: START)
    m.restore()
    return m


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"reason": " "}, "reason must be a non-empty string, got ' '"),
        ({"by": ""}, "by must be a non-empty string, got ''"),
        ({"measure": math.inf}, "measure must be a finite number, got inf"),
        ({"threshold": math.nan}, "threshold must be a finite number, got nan"),
        (
            {"trigger": "meteor"},
            "trigger must be one of manual, kill_switch, daily_loss, drawdown, portfolio_heat,"
            " technical_failure, reconciliation, job_failure, state_unreadable,"
            " journal_failure, protection_lost, firm_halt, firm_unreachable, got 'meteor'",
        ),
    ],
)
def test_a_bad_halt_request_is_refused_by_name(
    manager: HaltManager, kwargs: dict[str, object], says: str
) -> None:
    request: dict[str, object] = {"reason": "stop", "trigger": HaltTrigger.DRAWDOWN, "by": "risk"}
    request.update(kwargs)
    with pytest.raises(ValueError) as raised:
        manager.halt(**request)  # type: ignore[arg-type]
    assert str(raised.value) == says
    assert not manager.is_halted


def test_a_halt_request_is_stripped_and_takes_the_trigger_by_value(manager: HaltManager) -> None:
    record = manager.halt("  stop  ", "daily_loss", by=" risk ", measure=0.06, threshold=0.05)
    assert (record.reason, record.trigger, record.by) == ("stop", HaltTrigger.DAILY_LOSS, "risk")
    assert (record.measure, record.threshold, record.kill_switch) == (0.06, 0.05, False)
