"""The journal's timestamps are exactly ``datetime.isoformat()`` of the moment, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from gateway.store.journal import _Stamp

SECOND = 1_700_000_000  # 2023-11-14T22:13:20Z


def _ns(second: int, micro: int = 0, nano: int = 0) -> int:
    return (second * 1_000_000 + micro) * 1000 + nano


@pytest.mark.parametrize("micro", [0, 1, 999_999, 123_456])
def test_a_stamp_is_the_isoformat_of_its_moment(micro: int) -> None:
    ns = _ns(SECOND, micro, nano=999)  # nanoseconds below a microsecond are dropped
    expected = datetime.fromtimestamp(SECOND, UTC).replace(microsecond=micro).isoformat()
    assert _Stamp(lambda: ns)() == expected


def test_a_whole_second_has_no_fraction() -> None:
    assert _Stamp(lambda: _ns(SECOND))() == "2023-11-14T22:13:20+00:00"


def test_each_new_second_is_written_out_again() -> None:
    moments = iter([_ns(SECOND, 5), _ns(SECOND, 6), _ns(SECOND + 61, 7), _ns(SECOND + 61)])
    stamp = _Stamp(lambda: next(moments))
    assert [stamp(), stamp(), stamp(), stamp()] == [
        "2023-11-14T22:13:20.000005+00:00",
        "2023-11-14T22:13:20.000006+00:00",
        "2023-11-14T22:14:21.000007+00:00",
        "2023-11-14T22:14:21+00:00",
    ]


def test_the_first_stamp_at_the_epoch_is_written_out() -> None:
    assert _Stamp(lambda: 0)() == "1970-01-01T00:00:00+00:00"


def test_a_stamp_is_utc_on_a_host_in_another_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert _Stamp(lambda: _ns(SECOND))() == "2023-11-14T22:13:20+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()
