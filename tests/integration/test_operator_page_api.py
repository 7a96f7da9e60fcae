"""What the operator page reads besides the v1 views: its files without a token, the status's
`limits`, and GET /v1/equity (the day's equity points the risk sweep journals)."""

from __future__ import annotations

import httpx

from gateway.service import GatewayService
from tests.conftest import api_client, signal


async def test_the_page_and_its_assets_need_no_token_and_allow_only_this_origin(
    service: GatewayService,
) -> None:
    async with api_client(service, token=None) as anonymous:
        page = await anonymous.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "http" not in policy  # no foreign host allowed
        assert b"https://" not in page.content and b"http://" not in page.content
        for name in ("app.js", "app.css"):
            asset = await anonymous.get(f"/ui/{name}")
            assert asset.status_code == 200 and b"https://" not in asset.content
        assert (await anonymous.get("/ui/tokens.json")).status_code == 404
        assert (await anonymous.get("/v1/equity")).status_code == 401
        paths = (await anonymous.get("/openapi.json")).json()["paths"]
        assert "/v1/equity" in paths and "/ui" not in paths


async def test_status_carries_each_measures_limit_and_emergency_threshold(
    client: httpx.AsyncClient,
) -> None:
    limits = (await client.get("/v1/status")).json()["limits"]
    assert limits == {
        "daily_loss": {"limit": 0.02, "emergency": 0.05},
        "drawdown": {"limit": 0.10, "emergency": 0.15},
        "portfolio_heat": {"limit": 0.25, "emergency": 0.40},
        "stop_loss_percent": 0.03,
        "resume_cooldown_s": 300.0,
    }


async def test_equity_points_are_journaled_at_each_change_the_sweep_sees(
    service: GatewayService, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await service.risk_sweep()
    await service.risk_sweep()  # nothing changed: no second point
    first = (await client.get("/v1/equity")).json()
    assert [p["equity"] for p in first["points"]] == [100000.0]
    assert first["day_start_equity"] == 100000.0 and first["peak_equity"] == 100000.0
    assert first["day_start"] is not None

    assert (await client.post("/v1/signals", json=signal("eq-1", quantity=100))).status_code == 200
    moved = [{"symbol": "AAPL", "bid": 190, "ask": 190.1}]
    assert (await admin.post("/v1/sim/quotes", json=moved)).status_code == 200
    await service.risk_sweep()
    after = (await client.get("/v1/equity")).json()
    equity = [p["equity"] for p in after["points"]]
    assert len(equity) == 2 and equity[1] < equity[0] == 100000.0
    assert after["equity"] == equity[1]
    assert after["points"][0]["at"] <= after["points"][1]["at"]
