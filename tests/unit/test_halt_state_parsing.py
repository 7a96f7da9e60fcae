"""What makes a halt file unreadable, and the reason the operator reads for it.

An unreadable file starts the gateway HALTED with reason "halt state unreadable: <why>", so the
why names the exact field that is wrong; a file that is almost right is never half-trusted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltStateStore, HaltStateUnreadable, HaltTrigger

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CURRENT: dict[str, Any] = {
    "reason": "desk says stop",
    "trigger": "manual",
    "since": START.isoformat(),
    "kill_switch": False,
    "by": "cli",
    "measure": 0.16,
    "threshold": 0.15,
}


def write(tmp_path: Path, doc: object) -> HaltStateStore:
    store = HaltStateStore(tmp_path / "halt_state.json")
    store.path.write_text(json.dumps(doc))
    return store


def why_unreadable(tmp_path: Path, current: object) -> str:
    store = write(tmp_path, {"schema_version": 2, "current": current, "last_resume_at": None})
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert str(raised.value) == raised.value.reason
    prefix = f"{store.path}: "
    assert raised.value.reason.startswith(prefix)
    return raised.value.reason[len(prefix) :]


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("reason", "", "current.reason is not a non-empty string"),
        ("reason", 5, "current.reason is not a non-empty string"),
        ("by", None, "current.by is not a non-empty string"),
        ("trigger", "meteor", "current.trigger 'meteor' is unknown"),
        ("trigger", 1, "current.trigger 1 is unknown"),
        ("since", 1764072000, "current.since is not an ISO-8601 string"),
        ("since", "noon", "current.since 'noon' is not an ISO-8601 time"),
        ("since", "2026-11-25T12:00:00", "current.since '2026-11-25T12:00:00' has no time zone"),
        ("kill_switch", "yes", "current.kill_switch is not a boolean"),
        ("kill_switch", 1, "current.kill_switch is not a boolean"),
        ("measure", "0.16", "current.measure is not a finite number"),
        ("measure", True, "current.measure is not a finite number"),
        ("threshold", [0.15], "current.threshold is not a finite number"),
    ],
)
def test_a_bad_field_of_the_halt_in_force_is_named(
    tmp_path: Path, field: str, value: object, why: str
) -> None:
    assert why_unreadable(tmp_path, {**CURRENT, field: value}) == why


@pytest.mark.parametrize("field", sorted(CURRENT))
def test_a_missing_field_of_the_halt_in_force_is_named(tmp_path: Path, field: str) -> None:
    current = {k: v for k, v in CURRENT.items() if k != field}
    assert why_unreadable(tmp_path, current) == f"current has no field {field!r}"


def test_a_halt_in_force_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    assert why_unreadable(tmp_path, ["manual"]) == "current is not a JSON object"


def test_whole_numbers_are_read_as_measures(tmp_path: Path) -> None:
    store = write(
        tmp_path,
        {
            "schema_version": 2,
            "current": {**CURRENT, "measure": 1, "threshold": 0},
            "last_resume_at": None,
        },
    )
    state = store.load()
    assert state is not None and state.current is not None
    assert (state.current.measure, state.current.threshold) == (1.0, 0.0)


def test_nan_in_the_file_is_refused_by_name(tmp_path: Path) -> None:
    store = HaltStateStore(tmp_path / "halt_state.json")
    store.path.write_text(
        '{"schema_version": 2, "current": null, "last_resume_at": NaN}', encoding="utf-8"
    )
    with pytest.raises(HaltStateUnreadable, match="is not valid JSON: NaN is not allowed"):
        store.load()


def test_the_halt_from_an_unreadable_file_names_the_field(tmp_path: Path) -> None:
    store = write(
        tmp_path,
        {"schema_version": 2, "current": {**CURRENT, "kill_switch": "no"}, "last_resume_at": None},
    )
    manager = HaltManager(store, resume_cooldown_s=300, clock=lambda: START)
    manager.restore()
    current = manager.current
    assert current is not None and current.trigger is HaltTrigger.STATE_UNREADABLE
    assert "current.kill_switch is not a boolean" in current.reason


@pytest.mark.parametrize("field", ["current", "last_resume_at"])
def test_a_missing_field_of_the_document_is_named(tmp_path: Path, field: str) -> None:
    doc = {"schema_version": 2, "current": None, "last_resume_at": None}
    del doc[field]
    store = write(tmp_path, doc)
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert raised.value.reason == f"{store.path}: document has no field {field!r}"


@pytest.mark.parametrize(
    ("version", "why"),
    [
        (True, "unknown schema_version True (this gateway reads 1, 2)"),
        (3, "unknown schema_version 3 (this gateway reads 1, 2)"),
        ("2", "unknown schema_version '2' (this gateway reads 1, 2)"),
    ],
)
def test_an_unknown_schema_version_is_named(tmp_path: Path, version: object, why: str) -> None:
    store = write(tmp_path, {"schema_version": version, "current": None, "last_resume_at": None})
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert raised.value.reason == f"{store.path}: {why}"


def test_a_bad_last_resume_is_named(tmp_path: Path) -> None:
    store = write(tmp_path, {"schema_version": 2, "current": None, "last_resume_at": "noon"})
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert raised.value.reason == (
        f"{store.path}: document.last_resume_at 'noon' is not an ISO-8601 time"
    )


def test_a_document_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    store = write(tmp_path, [1, 2, 3])
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert raised.value.reason == f"{store.path}: document is not a JSON object"


def test_a_file_that_cannot_be_read_is_named_with_the_os_error(tmp_path: Path) -> None:
    store = HaltStateStore(tmp_path / "halt_state.json")
    store.path.mkdir()
    with pytest.raises(HaltStateUnreadable) as raised:
        store.load()
    assert raised.value.reason.startswith(f"cannot read {store.path}: [Errno 21] Is a directory")
