"""Nothing a client sends yields a 500: random bodies against every write endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import ADMIN_TOKEN, TEST_ENV, api_client

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
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
        "quantity": st.one_of(st.decimals(allow_nan=True).map(str), values),
        "order_type": st.one_of(st.sampled_from(["market", "limit"]), values),
        "limit_price": values,
        "time_in_force": st.one_of(st.sampled_from(["day", "gtc", "ioc"]), values),
        "extra": values,
    },
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(signal_like, values))
def test_random_bodies_never_yield_a_500(config: GatewayConfig, body: Any) -> None:
    # NaN and Infinity go out as the bare tokens Python's JSON writes: a server must refuse them.
    content = json.dumps(body, allow_nan=True).encode()
    headers = {"Content-Type": "application/json"}

    async def send() -> list[int]:
        service = GatewayService(config, environ=TEST_ENV)
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

    for code in asyncio.run(send()):
        assert code < 500, (code, body)
