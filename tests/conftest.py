"""Shared fixtures: a config written to a temporary directory, a started service, API clients."""

from __future__ import annotations

import copy
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import GatewayConfig, load_config
from gateway.http.api import create_app
from gateway.http.auth import Tokens
from gateway.service import GatewayService

ROOT = Path(__file__).resolve().parents[1]
STRATEGY_TOKEN = "strategy-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
# Tokens bound to one strategy each (GATEWAY_STRATEGY_TOKENS).
MOMENTUM_TOKEN = "momentum-bound-token-for-tests"
MEANREV_TOKEN = "meanrev-bound-token-for-tests"
BOUND_TOKENS = {
    MOMENTUM_TOKEN: frozenset({"momentum"}),
    MEANREV_TOKEN: frozenset({"meanrev"}),
}
RESUME_CODE = "resume-code-for-tests"

BASE_RISK: dict[str, Any] = yaml.safe_load((ROOT / "config" / "risk_management.yaml").read_text())
# The shipped file protects every new position with a stop (protective_stop: auto); the tests
# of everything else send plain orders, and the protection tests ask for it by name.
BASE_RISK["risk_management"]["protective_stop"] = "none"

BASE_GATEWAY: dict[str, Any] = {
    "gateway": {
        "mode": "paper",
        "broker": "simulated",
        "state_dir": "state",
        "risk_config": "risk_management.yaml",
        "api": {"host": "127.0.0.1", "port": 8787},
        "quotes": {"max_age_s": 5, "max_spread_bps": 100, "missing": "reject"},
        "schedule": {"risk_sweep_s": 3600, "reconcile_s": 3600},
    },
    "brokers": {
        "simulated": {
            "initial_cash": 100000,
            "tick_s": 0.2,
            "quotes": {"AAPL": [199.95, 200.05], "MSFT": [409.9, 410.1], "SPY": [589.95, 590.05]},
        }
    },
}


def deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def write_config(
    directory: Path, gateway: dict[str, Any] | None = None, risk: dict[str, Any] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "risk_management.yaml").write_text(
        yaml.safe_dump(deep_update(BASE_RISK, risk or {}))
    )
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(deep_update(BASE_GATEWAY, gateway or {})))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TEST_ENV = {
    "GATEWAY_TOKEN": STRATEGY_TOKEN,
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    "GATEWAY_RESUME_AUTH_CODE": RESUME_CODE,
}


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., GatewayConfig]:
    def make(
        gateway: dict[str, Any] | None = None, risk: dict[str, Any] | None = None
    ) -> GatewayConfig:
        return load_config(write_config(tmp_path / "cfg", gateway, risk))

    return make


@pytest.fixture
def config(make_config: Callable[..., GatewayConfig]) -> GatewayConfig:
    return make_config()


@pytest.fixture
async def service(config: GatewayConfig) -> AsyncIterator[GatewayService]:
    svc = GatewayService(config, environ=TEST_ENV)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Any]]:
    started: list[GatewayService] = []

    async def make(config: GatewayConfig, **kwargs: Any) -> GatewayService:
        svc = GatewayService(config, environ=kwargs.pop("environ", TEST_ENV), **kwargs)
        await svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        if svc.engine.ready or not svc.engine.shutting_down:
            await svc.stop()


def api_client(service: GatewayService, token: str | None = STRATEGY_TOKEN) -> httpx.AsyncClient:
    app = create_app(
        service, Tokens(strategy=STRATEGY_TOKEN, admin=ADMIN_TOKEN, bound=BOUND_TOKENS)
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers
    )


@pytest.fixture
async def client(service: GatewayService) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(service) as c:
        yield c


@pytest.fixture
async def admin(service: GatewayService) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(service, ADMIN_TOKEN) as c:
        yield c


def signal(signal_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signal_id": signal_id,
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 10,
    }
    body.update(fields)
    return body
