"""HaltStateStore on the disk: padded size, fsyncs, a full disk, and the quarantine of a bad file.

A full disk is made by the OS call that needs a new block failing with ENOSPC or EDQUOT (the
temp file's creation, or its write); everything else is the real file system.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.safety.halt_state import (
    PADDED_SIZE,
    HaltRecord,
    HaltState,
    HaltStateStore,
    HaltTrigger,
)

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HALTED = HaltState(
    current=HaltRecord("disk drill", HaltTrigger.MANUAL, START, True, "cli", 0.5, 0.4)
)


@pytest.fixture
def store(tmp_path: Path) -> HaltStateStore:
    return HaltStateStore(tmp_path / "a" / "b" / "halt_state.json")


def leftovers(store: HaltStateStore) -> list[str]:
    return sorted(p.name for p in store.path.parent.iterdir() if p != store.path)


def fail_with(code: int) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def test_save_makes_missing_directories_and_pads_the_file(store: HaltStateStore) -> None:
    store.save(HaltState())
    raw = store.path.read_bytes()
    assert len(raw) == PADDED_SIZE
    assert raw.endswith(b" \n")
    assert json.loads(raw) == {"schema_version": 2, "current": None, "last_resume_at": None}
    store.save(HALTED)  # a second save over an existing directory and file
    assert len(store.path.read_bytes()) == PADDED_SIZE
    assert store.load() == HALTED
    assert leftovers(store) == []


def test_a_state_longer_than_the_padding_is_written_whole(store: HaltStateStore) -> None:
    long = HaltState(
        current=HaltRecord("x" * (PADDED_SIZE + 10), HaltTrigger.MANUAL, START, False, "cli")
    )
    store.save(long)
    assert store.path.read_bytes().endswith(b"}\n")
    assert store.load() == long


def test_save_fsyncs_the_file_and_then_its_directory(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes are on disk before the rename, and the rename before save returns."""
    synced: list[tuple[str, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        synced.append((kind, os.fstat(fd).st_size if kind == "file" else 0))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.save(HALTED)
    assert synced == [("file", PADDED_SIZE), ("dir", 0)]


def test_saving_leaves_no_file_descriptor_open(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        store.save(HALTED)
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    for _ in range(20):
        store.save(HALTED)  # in place
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_state_with_a_non_finite_number_is_never_written(store: HaltStateStore) -> None:
    """The store writes nothing it could not read back."""
    store.save(HALTED)
    bad = HaltState(
        current=HaltRecord("x", HaltTrigger.DRAWDOWN, START, False, "risk", float("nan"), 0.15)
    )
    with pytest.raises(ValueError):
        store.save(bad)
    assert store.load() == HALTED


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_writes_over_the_old_file_in_place(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """No new temp file can be made: the padded old file is overwritten, and is readable."""
    store.save(HaltState(last_resume_at=START))
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(code))
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.save(HALTED)
    assert synced == [store.path.stat().st_ino]  # the overwritten file itself, once
    assert store.load() == HALTED
    assert len(store.path.read_bytes()) == PADDED_SIZE
    assert leftovers(store) == []


def test_a_full_disk_during_the_temp_write_writes_in_place_and_leaves_no_temp(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fd: int, mode: str) -> None:
            self._file = real_fdopen(fd, mode)

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullFile)
    store.save(HALTED)
    monkeypatch.undo()
    assert store.load() == HALTED
    assert leftovers(store) == []


def test_a_full_disk_with_no_old_file_raises(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.path.parent.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    with pytest.raises(OSError) as raised:
        store.save(HALTED)
    assert raised.value.errno == errno.ENOSPC
    assert not store.path.exists()


def test_a_full_disk_with_a_short_old_file_raises_and_leaves_it_alone(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old file too short for the new state (not padded) is not half overwritten."""
    store.path.parent.mkdir(parents=True)
    old = b'{"schema_version": 2, "current": null, "last_resume_at": null}'
    store.path.write_bytes(old)
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    with pytest.raises(OSError):
        store.save(HALTED)
    assert store.path.read_bytes() == old


def test_an_old_file_exactly_as_long_as_the_new_state_is_overwritten(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"x" * PADDED_SIZE)
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    store.save(HALTED)
    assert store.load() == HALTED


def test_an_error_other_than_a_full_disk_raises_and_keeps_the_old_state(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState(last_resume_at=START))
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.EACCES))
    with pytest.raises(PermissionError):
        store.save(HALTED)
    assert store.load() == HaltState(last_resume_at=START)


def test_a_failed_rename_on_a_full_disk_removes_the_temp_and_writes_in_place(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(os, "replace", fail_with(errno.ENOSPC))
    store.save(HALTED)
    monkeypatch.undo()
    assert store.load() == HALTED
    assert leftovers(store) == []


def test_a_failed_rename_for_another_reason_raises_and_removes_the_temp(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(os, "replace", fail_with(errno.EIO))
    with pytest.raises(OSError):
        store.save(HALTED)
    monkeypatch.undo()
    assert store.load() == HaltState()
    assert leftovers(store) == []


def test_quarantine_moves_the_file_aside_named_for_the_time(store: HaltStateStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"garbage")
    at = datetime(2026, 11, 25, 12, 0, 1, 2345, tzinfo=UTC)
    moved = store.quarantine(at)
    assert moved == store.path.with_name("halt_state.json.unreadable-20261125T120001002345Z")
    assert moved.read_bytes() == b"garbage"
    assert not store.path.exists()


def test_quarantine_of_a_missing_file_is_none(store: HaltStateStore) -> None:
    assert store.quarantine(START) is None


def test_quarantine_that_cannot_move_the_file_is_none_and_leaves_it(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"garbage")
    monkeypatch.setattr(os, "replace", fail_with(errno.EACCES))
    assert store.quarantine(START) is None
    assert store.path.read_bytes() == b"garbage"


def test_a_write_in_place_and_a_failed_quarantine_are_logged_with_the_path(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    monkeypatch.setattr(os, "replace", fail_with(errno.EACCES))
    with caplog.at_level(logging.WARNING, logger="gateway.safety.halt_state"):
        store.save(HALTED)
        store.quarantine(START)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"disk full: halt state written over {store.path} in place"),
        (logging.ERROR, f"could not move the unreadable halt state {store.path} aside"),
    ]


def test_a_short_write_in_place_is_not_taken_for_a_write(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: len(data) - 1)
    with pytest.raises(OSError):
        store.save(HALTED)


def test_a_failing_write_in_place_is_not_taken_for_a_write(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    monkeypatch.setattr(os, "pwrite", fail_with(errno.EIO))
    with pytest.raises(OSError):
        store.save(HALTED)
    monkeypatch.undo()
    assert store.load() == HaltState()


def test_the_temp_file_is_made_beside_the_state_not_in_the_temp_dir(
    store: HaltStateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename is only atomic within one file system: the temp file is never in TMPDIR."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmpdir"))
    store.save(HALTED)
    assert store.load() == HALTED


def test_a_failed_rename_raises_its_own_error_even_when_the_temp_is_gone(
    store: HaltStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(HaltState())
    monkeypatch.setattr(os, "replace", fail_with(errno.EIO))
    monkeypatch.setattr(os, "unlink", fail_with(errno.ENOENT))
    with pytest.raises(OSError) as raised:
        store.save(HALTED)
    assert raised.value.errno == errno.EIO
