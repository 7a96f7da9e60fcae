"""The operator page in Chromium against a real gateway: sign-in, live state, the controls."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    Gateway,
    Page,
    needs_chromium,
    open_page,
    start_gateway,
)
from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
pytestmark = needs_chromium

XSS = "<img src=x onerror=alert(1)>"


def signed_in(tab: Page, token: str = ADMIN_TOKEN) -> Page:
    tab.sign_in(token)
    expect(tab.by("state")).to_have_text("ACTIVE")
    return tab


def test_the_page_is_served_from_the_package_with_a_strict_policy(gateway: Gateway) -> None:
    for path, kind in [("/ui", "text/html"), ("/ui/app.js", "javascript"), ("/ui/app.css", "css")]:
        response = gateway.call("GET", path, token="")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert gateway.call("GET", "/ui/../gateway.yaml", token="").status_code == 404
    assert gateway.call("GET", "/ui/nothing.js", token="").status_code == 404


def test_sign_in_shows_state_risk_against_limits_and_the_chart(tab: Page) -> None:
    paint = "performance.getEntriesByName('first-contentful-paint')"
    # Polled from here: wait_for_function re-evaluates its string with eval() in the page,
    # which the page's policy (no 'unsafe-eval') refuses whenever the first try is false
    # (microsoft/playwright#7395); a plain evaluate is allowed.
    deadline = time.monotonic() + 10
    while not tab.page.evaluate(f"{paint}.length > 0"):
        assert time.monotonic() < deadline, "no first contentful paint within 10 s"
        tab.page.wait_for_timeout(20)
    first_paint = tab.page.evaluate(f"{paint}[0].startTime")
    print(f"first contentful paint: {first_paint:.0f} ms")
    assert first_paint < 1000
    expect(tab.by("sign-in-form")).to_be_visible()
    signed_in(tab)
    expect(tab.by("sign-in-form")).to_be_hidden()
    expect(tab.by("connection")).to_have_attribute("data-state", "live")
    expect(tab.by("daily-loss")).to_contain_text("limit 2.00% · emergency 5.00%")
    expect(tab.by("drawdown")).to_contain_text("limit 10.00% · emergency 15.00%")
    expect(tab.by("heat")).to_contain_text("limit 25.00% · emergency 40.00%")
    expect(tab.by("equity-chart").locator("svg")).to_be_visible()
    expect(tab.by("broker")).to_have_text("simulated connected")
    for testid in ("positions", "open-orders", "decisions", "halt-button", "kill-button"):
        expect(tab.by(testid)).to_be_visible()
    expect(tab.by("resume-button")).to_be_visible()
    # The token lives in this tab's session storage only, never in the address.
    assert ADMIN_TOKEN not in tab.page.url
    assert tab.page.evaluate("sessionStorage.getItem('gateway.token')") == ADMIN_TOKEN
    assert tab.page.evaluate("localStorage.length") == 0
    assert all(ADMIN_TOKEN not in url for url in tab.requests)
    # A reload keeps the session: no second sign-in.
    tab.page.reload()
    expect(tab.by("state")).to_have_text("ACTIVE")


def test_a_wrong_token_gets_a_message_and_the_sign_in_form(tab: Page) -> None:
    tab.sign_in("not-a-token")
    expect(tab.by("sign-in-message")).to_contain_text("wrong or expired (unknown token)")
    expect(tab.by("token-input")).to_be_visible()
    expect(tab.by("state")).to_be_hidden()
    assert tab.page.evaluate("sessionStorage.getItem('gateway.token')") is None


def test_a_token_revoked_while_signed_in_brings_back_the_sign_in_form(tab: Page) -> None:
    tab.page.evaluate("sessionStorage.setItem('gateway.token', 'expired-token')")
    tab.page.reload()
    expect(tab.by("sign-in-message")).to_contain_text("wrong or expired")
    expect(tab.by("token-input")).to_be_visible()


def test_a_halt_made_over_the_api_appears_within_a_second_without_reload(
    tab: Page, gateway: Gateway
) -> None:
    signed_in(tab)
    tab.page.evaluate("window.__noReload = true")
    gateway.call("POST", "/v1/halt", json={"reason": "desk says stop"})
    expect(tab.by("state")).to_have_text("HALTED", timeout=1000)
    expect(tab.by("halt-reason")).to_have_text("desk says stop")
    expect(tab.by("halt-trigger")).to_have_text("manual")
    assert tab.page.evaluate("window.__noReload") is True


def test_a_reason_with_markup_shows_as_text_and_runs_nothing(tab: Page, gateway: Gateway) -> None:
    signed_in(tab)
    gateway.call("POST", "/v1/halt", json={"reason": XSS})
    expect(tab.by("halt-reason")).to_have_text(XSS)
    tab.page.wait_for_timeout(500)
    assert tab.dialogs == []
    assert tab.page.locator("img").count() == 0


def test_halt_through_the_page_asks_for_a_reason(tab: Page, gateway: Gateway) -> None:
    signed_in(tab, STRATEGY_TOKEN)
    tab.by("halt-button").click()
    tab.by("halt-reason-input").fill("spread looks wrong")
    tab.by("halt-confirm").click()
    expect(tab.by("state")).to_have_text("HALTED")
    halt = gateway.call("GET", "/v1/status").json()["halt"]
    assert halt["reason"] == "spread looks wrong" and halt["trigger"] == "manual"


def test_kill_needs_the_confirmation_and_then_cancels_every_order(
    tab: Page, gateway: Gateway
) -> None:
    gateway.signal("rest-1", qty=5, order_type="limit", limit_price=150)
    signed_in(tab)
    expect(tab.by("open-orders")).to_contain_text("AAPL")

    tab.accept_dialogs = False
    tab.by("kill-button").click()
    expect(tab.by("control-message")).to_have_text("Kill not sent.")
    assert len(tab.dialogs) == 1 and tab.dialogs[0].startswith("confirm:")
    status = gateway.call("GET", "/v1/status").json()
    assert status["state"] == "active" and status["orders"]["open"] == 1

    tab.accept_dialogs = True
    tab.by("kill-button").click()
    expect(tab.by("state")).to_have_text("HALTED")
    expect(tab.by("control-message")).to_contain_text("1 order(s) cancelled, 0 failed")
    expect(tab.by("open-orders")).to_contain_text("no open orders")
    status = gateway.call("GET", "/v1/status").json()
    assert status["halt"]["kill_switch"] is True and status["orders"]["open"] == 0
    assert gateway.call("GET", "/v1/orders").json() == []


def test_resume_with_the_admin_token_and_refused_for_a_strategy_token(
    browser: Any, gateway: Gateway
) -> None:
    gateway.call("POST", "/v1/halt", json={"reason": "drill"})
    strategy = open_page(browser, gateway.url)
    admin = open_page(browser, gateway.url)
    try:
        strategy.sign_in(STRATEGY_TOKEN)
        expect(strategy.by("state")).to_have_text("HALTED")
        strategy.by("resume-button").click()
        expect(strategy.by("control-message")).to_contain_text("needs the admin token")
        expect(strategy.by("state")).to_have_text("HALTED")

        admin.sign_in(ADMIN_TOKEN)
        expect(admin.by("state")).to_have_text("HALTED")
        admin.by("resume-button").click()
        expect(admin.by("state")).to_have_text("ACTIVE")
        expect(admin.by("control-message")).to_have_text("Resumed: ACTIVE.")
        # The other tab follows without a reload.
        expect(strategy.by("state")).to_have_text("ACTIVE")
        assert strategy.foreign == [] and admin.foreign == []
    finally:
        strategy.page.context.close()
        admin.page.context.close()


def test_a_resume_in_cooldown_shows_the_time_left_and_the_refusal(
    browser: Any, tmp_path: Path
) -> None:
    process = start_gateway(tmp_path, cooldown_s=600)
    tab = open_page(browser, process.url)
    try:
        Gateway(process).call("POST", "/v1/halt", json={"reason": "cooling"})
        tab.sign_in(ADMIN_TOKEN)
        expect(tab.by("state")).to_have_text("HALTED")
        expect(tab.by("resume-when")).to_contain_text("cooldown: 9m")
        expect(tab.by("resume-button")).to_contain_text("Resume (9m")
        tab.by("resume-button").click()
        expect(tab.by("control-message")).to_contain_text("Resume refused: cooldown_active:")
        expect(tab.by("state")).to_have_text("HALTED")
        assert tab.foreign == []
    finally:
        tab.page.context.close()
        process.kill()


def test_positions_show_after_a_fill_with_their_stop_and_risk(tab: Page, gateway: Gateway) -> None:
    signed_in(tab)
    gateway.signal("fill-1", qty=7)
    gateway.signal("fill-2", symbol="MSFT", qty=10, stop_loss_price=400)
    rows = tab.by("positions").locator("tbody tr")
    expect(rows).to_have_count(2)
    aapl, msft = rows.nth(0), rows.nth(1)
    expect(aapl).to_contain_text("AAPL")
    expect(aapl).to_contain_text("200.05")
    expect(aapl).to_contain_text("none")  # no stop: risk at stop_loss_percent (3%)
    expect(aapl).to_contain_text("0.04%")  # 7 x 199.95 x 0.03 / ~100,000
    expect(msft).to_contain_text("400.00")  # its stop-loss leg
    expect(msft).to_contain_text("0.10%")  # 10 x (409.90 - 400) / ~100,000
    expect(tab.by("open-orders")).to_contain_text("stop")


def test_the_gateway_going_away_shows_disconnected_then_recovers(
    tab: Page, gateway: Gateway, tmp_path: Path
) -> None:
    signed_in(tab)
    gateway.process.kill()
    started = time.monotonic()
    expect(tab.by("connection")).to_contain_text("disconnected", timeout=5000)
    assert time.monotonic() - started < 5
    expect(tab.by("state")).to_have_text("ACTIVE")  # the last known state stays, dimmed

    # The same gateway (same state dir, same port) comes back: the page recovers by itself.
    gateway.process = start_gateway(tmp_path, port=gateway.process.port)
    expect(tab.by("connection")).to_have_attribute("data-state", "live", timeout=10000)
    gateway.call("POST", "/v1/halt", json={"reason": "after the restart"})
    expect(tab.by("state")).to_have_text("HALTED", timeout=2000)
    expect(tab.by("halt-reason")).to_have_text("after the restart")
