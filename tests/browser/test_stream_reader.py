"""The page's own reading of Server-Sent Events, against a stream the browser is handed by a
route (so it runs whatever the gateway's stream does): fields, comments, CRLF, multi-line data,
resuming with Last-Event-ID after the stream ends, and event text shown as text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.conftest import Gateway, Page, needs_chromium
from tests.conftest import ADMIN_TOKEN

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
pytestmark = needs_chromium

MARKUP = "<img src=x onerror=alert(1)>"


def decision(signal_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "decision": "rejected",
        "reasons": [{"code": code, "message": message}],
        "order": None,
        "risk": {"equity": 100000, "position_risk": 0, "heat_before": 0, "heat_after": 0},
    }


def test_the_page_reads_the_stream_and_resumes_after_the_last_id(
    tab: Page, gateway: Gateway
) -> None:
    asked: list[tuple[str, str | None]] = []
    first = (
        ": keepalive\r\n"
        f"id: 7\r\nevent: decision\r\ndata: {json.dumps(decision('sse-1', 'quote_missing', 'no quote'))}\r\n\r\n"
        "id: 8\nevent: decision\n"
        f"data: {json.dumps(decision('sse-2', 'price_collar', MARKUP))}\n\n"
        "id: 9\nevent: mystery\ndata: {}\n\n"
    )
    second = f"id: 10\nevent: decision\ndata: {json.dumps(decision('sse-3', 'halted', 'after resuming'))}\n\n"

    def stream(route: Any) -> None:
        request = route.request
        asked.append((request.url.removeprefix(gateway.url), request.headers.get("last-event-id")))
        assert request.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"
        body = first if len(asked) == 1 else second if len(asked) == 2 else ": keepalive\n\n"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    tab.page.route("**/v1/events*", stream)
    tab.sign_in(ADMIN_TOKEN)
    rows = tab.by("decisions").locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("sse-3")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text(f"price_collar{MARKUP}")
    expect(rows.nth(2)).to_contain_text("quote_missingno quote")
    assert asked[0] == ("/v1/events?after=0", None)
    assert asked[1] == ("/v1/events", "9")
    assert tab.page.locator("img").count() == 0 and tab.dialogs == []
