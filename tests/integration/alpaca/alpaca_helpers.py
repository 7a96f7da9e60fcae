"""Shared helpers of the Alpaca tests (cassettes, keys, fast settings); conftest.py holds the
fixtures. A module of its own because ``import conftest`` could find another directory's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import vcr
from vcr.persisters.filesystem import FilesystemPersister

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so ``tests.fakes`` imports however pytest was started
    sys.path.insert(0, str(ROOT))

CASSETTES = ROOT / "cassettes" / "alpaca"
KEY, SECRET = "test-key-id", "test-secret-key"

# vcrpy's default (method, scheme, host, port, path, query): the query matters here
# (?status=open, ?client_order_id=...). The reference recordings of GET /v2/orders were made
# without a query string, so those replay with NO_QUERY.
WITH_QUERY = ("method", "scheme", "host", "port", "path", "query")
NO_QUERY = ("method", "scheme", "host", "port", "path")


class _JoinedPersister(FilesystemPersister):
    """Loads ``a.yaml+b.yaml`` as one cassette: a flow over two real recordings (look up by
    client order id, then cancel by id) replays both files as they are."""

    @classmethod
    def load_cassette(cls, cassette_path: Any, serializer: Any) -> tuple[list[Any], list[Any]]:
        first, *rest = str(cassette_path).split("+")
        requests, responses = super().load_cassette(first, serializer)
        for part in rest:
            more_req, more_resp = super().load_cassette(CASSETTES / part, serializer)
            requests, responses = [*requests, *more_req], [*responses, *more_resp]
        return requests, responses

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        raise AssertionError("tests never record: write cassettes by hand")


def make_vcr(match_on: tuple[str, ...] = WITH_QUERY) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="none",
        match_on=match_on,
        filter_headers=["APCA-API-KEY-ID", "APCA-API-SECRET-KEY"],
        decode_compressed_response=True,
    )
    recorder.register_persister(_JoinedPersister)
    return recorder


def played(cassette: Any, method: str | None = None, path_part: str = "") -> int:
    """How many recorded answers were played, optionally only for one method / path."""
    total = 0
    for index, count in cassette.play_counts.items():
        request = cassette.requests[index]
        if (method is None or request.method == method) and path_part in request.path:
            total += count
    return total


FAST = {
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
    "connection_limit_backoff_s": 0.3,
    "connect_timeout_s": 10.0,  # a safety net: the fakes answer at once
    "timeout_s": 2.0,
}
