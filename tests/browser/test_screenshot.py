"""The README's screenshot of the operator page: a halted gateway with positions, an open order,
the day's equity moving and the last decisions. Taken on every run (into the test's directory);
``GATEWAY_UPDATE_SCREENSHOT=1`` writes it to docs/operator-page.png, the file the README shows."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOT, Gateway, needs_chromium, open_page, start_gateway
from tests.conftest import ADMIN_TOKEN

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
pytestmark = needs_chromium


def quotes(gateway: Gateway, **moves: tuple[float, float]) -> None:
    body = [{"symbol": s, "bid": bid, "ask": ask} for s, (bid, ask) in moves.items()]
    assert gateway.call("POST", "/v1/sim/quotes", token=ADMIN_TOKEN, json=body).status_code == 200


def test_screenshot_of_a_halted_gateway(browser: Any, tmp_path: Path) -> None:
    process = start_gateway(tmp_path, cooldown_s=300)
    gateway = Gateway(process)
    tab = open_page(browser, process.url)
    try:
        tab.sign_in(ADMIN_TOKEN)
        expect(tab.by("state")).to_have_text("ACTIVE")
        gateway.signal("momentum-0931-aapl", qty=60)
        gateway.signal("momentum-0932-msft", symbol="MSFT", qty=25, stop_loss_price=398)
        gateway.signal(
            "meanrev-0935-spy", symbol="SPY", qty=10, order_type="limit", limit_price=585
        )
        gateway.signal("momentum-0940-tsla", symbol="TSLA", qty=5)
        # The market moves: a peak, then a slide (each sweep journals the equity it sees).
        path = [(201.4, 202.2), (203.9, 204.0), (202.5, 202.6), (199.1, 199.2), (197.6, 197.7)]
        for step, (bid, ask) in enumerate(path):
            quotes(
                gateway,
                AAPL=(bid, ask),
                MSFT=(round(407.9 + step * 0.8, 2), round(408.1 + step * 0.8, 2)),
            )
            time.sleep(0.6)
        gateway.call("POST", "/v1/halt", json={"reason": "AAPL feed looks wrong: halted by desk"})
        expect(tab.by("state")).to_have_text("HALTED")
        expect(tab.by("positions")).to_contain_text("MSFT")
        tab.page.wait_for_timeout(2500)  # the tables' next poll, the chart's last point
        shot = tmp_path / "operator-page.png"
        tab.page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert tab.foreign == [] and tab.dialogs == []
        if os.environ.get("GATEWAY_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        tab.page.context.close()
        process.kill()
