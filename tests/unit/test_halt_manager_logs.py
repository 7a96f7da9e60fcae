"""What the operator reads in the log when the halt file cannot be written, and for odd resumes.

A write failure is real: the halt file's path is made a non-empty directory.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.safety.halt import HaltManager, HaltStateStore, HaltStateWriteError, HaltTrigger

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LOGGER = "gateway.safety.halt"


@pytest.fixture
def store(tmp_path: Path) -> HaltStateStore:
    return HaltStateStore(tmp_path / "halt_state.json")


@pytest.fixture
def manager(store: HaltStateStore) -> HaltManager:
    m = HaltManager(store, resume_cooldown_s=0, clock=lambda: START)
    m.restore()
    return m


def break_disk(store: HaltStateStore) -> None:
    store.path.unlink(missing_ok=True)
    store.path.mkdir(parents=True)
    (store.path / "in-the-way").write_text("")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records]


def test_a_failed_write_and_its_retry_say_which_change_and_where(
    manager: HaltManager, store: HaltStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    break_disk(store)
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert manager.retry_persist() is False
        shutil.rmtree(store.path)
        assert manager.retry_persist() is True
    logged = lines(caplog)
    assert len(logged) == 2
    level, message = logged[0]
    assert level == logging.CRITICAL
    assert message.startswith(
        f"halt state NOT written to {store.path} (retry): [Errno 21] Is a directory: "
    )
    assert message.endswith(f" -> {str(store.path)!r}; halted in memory, retry pending")
    assert logged[1] == (
        logging.WARNING,
        f"halt state written to {store.path} after an earlier failure",
    )


def test_a_failed_first_halt_says_halt_and_its_trigger(
    manager: HaltManager, store: HaltStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    break_disk(store)
    with caplog.at_level(logging.CRITICAL, logger=LOGGER):
        manager.halt("dd", HaltTrigger.DRAWDOWN, by="risk")
    assert any(
        m.startswith(f"halt state NOT written to {store.path} (halt (drawdown)): ")
        for _, m in lines(caplog)
    )


def test_a_resume_that_cannot_be_written_says_who_where_and_why(
    manager: HaltManager, store: HaltStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    break_disk(store)
    caplog.clear()
    with (
        caplog.at_level(logging.CRITICAL, logger=LOGGER),
        pytest.raises(HaltStateWriteError) as raised,
    ):
        manager.resume(by="api:admin")
    assert str(raised.value).startswith(f"resume not written to {store.path}: ")
    [(level, message)] = lines(caplog)
    assert level == logging.CRITICAL
    assert message.startswith(f"resume by api:admin not written to {store.path}: [Errno ")


def test_a_resume_while_trading_is_logged_and_ignored(
    manager: HaltManager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert manager.resume(by="api:admin") is None
    assert lines(caplog) == [(logging.INFO, "resume by api:admin ignored: not halted")]


@pytest.mark.parametrize("by", ["", "  ", None])
def test_a_resume_without_a_name_is_refused_by_name(manager: HaltManager, by: object) -> None:
    manager.halt("stop", HaltTrigger.MANUAL, by="cli")
    with pytest.raises(ValueError) as raised:
        manager.resume(by=by)  # type: ignore[arg-type]
    assert str(raised.value) == f"by must be a non-empty string, got {by!r}"
    assert manager.is_halted


def test_a_plain_resume_is_logged_with_who_what_and_the_count(
    manager: HaltManager, caplog: pytest.LogCaptureFixture
) -> None:
    manager.halt("desk says stop", HaltTrigger.MANUAL, by="cli")
    manager.record_blocked("s1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        manager.resume(by="api:admin")
    assert lines(caplog) == [
        (
            logging.WARNING,
            "resumed by api:admin after 'desk says stop': blocked 1 signal while halted",
        )
    ]


def test_a_failing_listener_is_logged_with_the_listener_and_the_event(
    store: HaltStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    class Journal:
        def __repr__(self) -> str:
            return "<journal listener>"

        def __call__(self, event: object) -> None:
            raise OSError("disk I/O error")

    m = HaltManager(store, resume_cooldown_s=0, clock=lambda: START, listeners=[Journal()])
    m.restore()
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        m.halt("stop", HaltTrigger.MANUAL, by="cli")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["halt listener <journal listener> failed on halt"]
    assert errors[0].exc_info is not None


def test_a_failed_first_write_of_the_state_says_so(
    manager: HaltManager, store: HaltStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    break_disk(store)
    caplog.clear()
    with caplog.at_level(logging.CRITICAL, logger=LOGGER):
        assert manager.write_state() is False
    [(level, message)] = lines(caplog)
    assert level == logging.CRITICAL
    assert message.startswith(f"halt state NOT written to {store.path} (write): ")
    assert manager.persisted is False
