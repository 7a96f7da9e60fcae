"""Strategy-bound tokens (GATEWAY_STRATEGY_TOKENS): a bound token acts only for its strategies."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.http.auth import Role, ensure_tokens, parse_strategy_tokens
from gateway.service import GatewayService
from tests.conftest import MEANREV_TOKEN, MOMENTUM_TOKEN, api_client, signal


async def test_a_bound_token_sends_for_its_strategy_only(service: GatewayService) -> None:
    async with api_client(service, MEANREV_TOKEN) as meanrev:
        refused = await meanrev.post("/v1/signals", json=signal("t-1"))  # strategy momentum
        assert refused.status_code == 403
        assert refused.json()["code"] == "strategy_not_allowed"
        assert service.journal.signal("t-1") is None  # refused at the edge: nothing journaled
        own = await meanrev.post("/v1/signals", json=signal("t-2", strategy="meanrev"))
        assert own.status_code == 200 and own.json()["decision"] == "accepted"
        outcome = {"strategy": "momentum", "ok": False, "failure_type": "strategy_error"}
        assert (await meanrev.post("/v1/outcomes", json=outcome)).status_code == 403
    async with api_client(service, MOMENTUM_TOKEN) as momentum:
        assert (await momentum.post("/v1/signals", json=signal("t-3"))).status_code == 200
        # Any token may still stop everything; only admin resumes.
        assert (await momentum.post("/v1/halt", json={"reason": "stop"})).status_code == 200
        assert (await momentum.post("/v1/resume", json={})).status_code == 403


def test_the_variable_is_parsed_and_checked() -> None:
    bound = parse_strategy_tokens("momentum=T1, meanrev=T2,momentum=T3,swing=T1")
    assert bound == {
        "T1": frozenset({"momentum", "swing"}),
        "T2": frozenset({"meanrev"}),
        "T3": frozenset({"momentum"}),
    }
    for bad in ("momentum", "momentum=", "=T1", "bad name=T1", "momentum=T1,,"):
        with pytest.raises(ConfigError) as caught:
            parse_strategy_tokens(bad)
        assert "GATEWAY_STRATEGY_TOKENS" in str(caught.value)
        assert "T1" not in str(caught.value).replace("GATEWAY_STRATEGY_TOKENS", "")
    with pytest.raises(ConfigError):
        parse_strategy_tokens("momentum=ADMIN", reserved=("STRAT", "ADMIN"))


def test_the_server_binds_tokens_from_the_environment(tmp_path: Path) -> None:
    env = {
        "GATEWAY_TOKEN": "s" * 32,
        "GATEWAY_ADMIN_TOKEN": "a" * 32,
        "GATEWAY_STRATEGY_TOKENS": "momentum=" + "m" * 32,
    }
    tokens = ensure_tokens(tmp_path, env)
    principal = tokens.principal_of("m" * 32)
    assert principal is not None and principal.role is Role.STRATEGY
    assert principal.strategies == frozenset({"momentum"})
    assert tokens.principal_of("s" * 32).strategies is None  # type: ignore[union-attr]
    assert tokens.principal_of("m" * 31) is None
    assert "m" * 32 not in repr(tokens)
