"""Nothing a client sends yields a 500: random bodies against every write endpoint.

Numbers come as JSON numbers, as bare tokens Python's encoder would never write (``1e-400``,
``1e999999``, ``NaN``) and as strings; texts include blank ones; quote times include NaN, 1e300
and dates outside any sane range. The values that once gave a 500 or a silent 0 are pinned as
explicit examples.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, TEST_ENV, api_client


class Raw(str):
    """A token written into the JSON text as is (a number no encoder would write)."""


def encode(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    # NaN and Infinity go out as the bare tokens Python's JSON writes: a server must refuse them.
    return json.dumps(value, allow_nan=True)


EDGE_NUMBERS = [
    "1e-400",
    "1e999999",
    "-1e999999",
    "1e99999999999999999999",
    "4.9e-324",
    "1.7976931348623157e308",
    "0.000000001",
    "0.0000000001",
    "999999999999.999",
    "1e12",
    "1.0000000000000001",
    "123456789012345678901234567890",
    "0.1",
    "-0",
    "1E+2",
]
number_tokens = st.one_of(
    st.sampled_from([*EDGE_NUMBERS, "NaN", "Infinity", "-Infinity"]).map(Raw),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Raw(f"{d:e}")),
)
number_texts = st.one_of(
    st.sampled_from([*EDGE_NUMBERS, "NaN", "sNaN", "-Infinity", " 5 ", "1_000", "0x10", ""]),
    st.decimals(allow_nan=True).map(str),
)
numbers = st.one_of(
    number_tokens,
    number_texts,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
)
blank_texts = st.sampled_from(["", " ", "   ", "\t\n", "\u3000"])
times = st.one_of(
    numbers,
    st.sampled_from(
        [
            "2026-01-02T03:04:05Z",
            "2200-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    blank_texts,
    number_tokens,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
signal_like = st.fixed_dictionaries(
    {},
    optional={
        "signal_id": st.one_of(st.text(max_size=140), values),
        "strategy": st.one_of(st.just("s"), values),
        "symbol": st.one_of(st.sampled_from(["AAPL", "MSFT", "NOPE"]), values),
        "side": st.one_of(st.sampled_from(["buy", "sell"]), values),
        "quantity": st.one_of(numbers, values),
        "order_type": st.one_of(st.sampled_from(["market", "limit"]), values),
        "limit_price": st.one_of(numbers, values),
        "time_in_force": st.one_of(st.sampled_from(["day", "gtc", "ioc"]), values),
        "extra": values,
    },
)
sim_quotes_like = st.lists(
    st.fixed_dictionaries(
        {"symbol": st.one_of(st.sampled_from(["AAPL", "MSFT"]), values)},
        optional={"bid": numbers, "ask": numbers, "ts": times},
    ),
    max_size=3,
)
halt_like = st.fixed_dictionaries({"reason": st.one_of(blank_texts, st.text(max_size=20), values)})
outcome_like = st.fixed_dictionaries(
    {
        "strategy": st.one_of(st.just("s"), blank_texts, values),
        "ok": st.one_of(st.booleans(), values),
    },
    optional={
        "symbol": st.one_of(st.just("AAPL"), values),
        "failure_type": st.one_of(st.just("data_error"), values),
        "error": st.one_of(blank_texts, st.text(max_size=20), values),
    },
)

SIGNAL = {"signal_id": "x-1", "strategy": "s", "symbol": "AAPL", "side": "buy"}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(signal_like, sim_quotes_like, halt_like, outcome_like, values))
@example(body={**SIGNAL, "quantity": "1e-400"})
@example(body={**SIGNAL, "quantity": "1e999999"})
@example(body={**SIGNAL, "quantity": Raw("1e999999")})
@example(body={**SIGNAL, "quantity": 1, "order_type": "limit", "limit_price": "1e999999"})
@example(body={"reason": "   "})
@example(body=[{"symbol": "AAPL", "bid": 1, "ask": 2, "ts": Raw("NaN")}])
@example(body=[{"symbol": "AAPL", "bid": 1, "ask": 2, "ts": Raw("1e300")}])
@example(body=[{"symbol": "AAPL", "bid": 1, "ask": 2, "ts": "0001-01-01T00:00:00+14:00"}])
@example(body=[{"symbol": "AAPL", "bid": "1e-400", "ask": "1e999999"}])
@example(body={"strategy": "s", "ok": False, "failure_type": "data_error", "error": " "})
@example(body={"strategy": "s", "ok": False, "error": "\ud800"})
def test_random_bodies_never_yield_a_500(config: GatewayConfig, body: Any) -> None:
    content = encode(body).encode()
    headers = {"Content-Type": "application/json"}

    async def send(state_dir: Path) -> list[int]:
        # A fresh state per example: a halt or an order left by one example would otherwise
        # keep the next one from reaching pricing and the checks.
        service = GatewayService(config.with_overrides(state_dir=state_dir), environ=TEST_ENV)
        await service.start()
        try:
            async with api_client(service) as client, api_client(service, ADMIN_TOKEN) as admin:
                return [
                    (
                        await client.post("/v1/signals", content=content, headers=headers)
                    ).status_code,
                    (
                        await client.post("/v1/outcomes", content=content, headers=headers)
                    ).status_code,
                    (await client.post("/v1/halt", content=content, headers=headers)).status_code,
                    (await client.post("/v1/kill", content=content, headers=headers)).status_code,
                    (await admin.post("/v1/resume", content=content, headers=headers)).status_code,
                    (
                        await admin.post("/v1/sim/quotes", content=content, headers=headers)
                    ).status_code,
                ]
        finally:
            await service.stop()

    with tempfile.TemporaryDirectory() as state_dir:
        codes = asyncio.run(send(Path(state_dir)))
    for code in codes:
        assert code < 500, (code, body)
