"""The operator page in a real browser: Debian's Chromium driven by Playwright for Python, against a
real ``gateway serve`` process (tests/e2e/process.py).

Playwright never downloads a browser here: it launches /usr/bin/chromium (``.ci/run`` installs
Debian's ``chromium`` when it is missing). Without it, or without the ``playwright`` package,
these tests are skipped with the reason. Every request the page makes passes through a route
that records it and refuses any host but the gateway's, so a test can prove that the page asks
nobody else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN
from tests.e2e.process import GatewayProcess

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
BOUND_TOKEN = "momentum-bound-token-for-tests"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "operator-page.png"

# Each test module marks itself with this (a conftest cannot skip its directory).
needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (Debian: chromium)"),
]

# These flags keep Chromium from calling Google's hosts at start (the machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# One browser per module, not per session: Playwright's sync API keeps an event loop running in
# this thread while it is open, and the asyncio tests after these need the thread's loop free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Gateway:
    process: GatewayProcess

    @property
    def url(self) -> str:
        return self.process.url

    def call(self, method: str, path: str, token: str = STRATEGY_TOKEN, **kw: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=10,
            **kw,
        )
        assert response.status_code < 500, response.text
        return response

    def signal(self, signal_id: str, symbol: str = "AAPL", qty: float = 10, **extra: Any) -> Any:
        body = {"signal_id": signal_id, "strategy": "momentum", "symbol": symbol}
        body |= {"side": "buy", "quantity": qty, **extra}
        response = self.call("POST", "/v1/signals", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def start_gateway(
    directory: Path, *, cooldown_s: float = 0, port: int | None = None
) -> GatewayProcess:
    return GatewayProcess(
        directory,
        gateway={"gateway": {"schedule": {"risk_sweep_s": 0.5, "reconcile_s": 3600}}},
        risk={"emergency": {"resume_cooldown_s": cooldown_s}},
        env={"GATEWAY_STRATEGY_TOKENS": f"momentum={BOUND_TOKEN}"},
        port=port,
    ).start()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    process = start_gateway(tmp_path)
    gw = Gateway(process)
    try:
        yield gw
    finally:
        # A test may restart the gateway (gw.process is then a new process): both go, or the
        # restarted one outlives the test run.
        gw.process.kill()
        process.kill()


@dataclass
class Page:
    """A browser tab on the gateway's page, with every request and dialog it made recorded."""

    page: Any
    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    accept_dialogs: bool = False  # what the operator answers to a confirm()

    def by(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)

    def sign_in(self, token: str = ADMIN_TOKEN) -> None:
        self.by("token-input").fill(token)
        self.by("sign-in").click()


def open_page(browser: Any, gateway_url: str) -> Page:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    origin = urlsplit(gateway_url).netloc
    recorded = Page(page=page, origin=origin)

    def route(r: Any) -> None:
        url = r.request.url
        recorded.requests.append(url)
        if urlsplit(url).netloc != origin:
            recorded.foreign.append(url)
            r.abort()
        else:
            r.continue_()

    context.route("**/*", route)

    def dialog(d: Any) -> None:
        recorded.dialogs.append(f"{d.type}: {d.message}")
        if recorded.accept_dialogs:
            d.accept()
        else:
            d.dismiss()

    page.on("dialog", dialog)
    page.goto(f"{gateway_url}/ui")
    return recorded


@pytest.fixture
def tab(browser: Any, gateway: Gateway) -> Iterator[Page]:
    page = open_page(browser, gateway.url)
    try:
        yield page
        # Whatever the test did, the page asked no host but the gateway.
        assert page.foreign == []
    finally:
        page.page.context.close()
