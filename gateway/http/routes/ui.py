"""The operator page: GET /ui and its assets, and GET /v1/equity, the day's equity for its chart.

The page is three static files shipped inside the package (``gateway/http/ui/``), read once and
served from memory: no CDN, no build step, works on an offline host. They need no token (they
hold no data); the page asks the API with the token the operator types in, like any client, so
what a token may not do the page cannot do either. A strict Content-Security-Policy allows
nothing but this origin: no inline script, no foreign host, no frame.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from gateway.http.deps import Auth
from gateway.http.exact_json import ExactJSONRoute
from gateway.service import GatewayService

_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

# At most this many equity points go to the chart (a sweep journals one at each change).
MAX_EQUITY_POINTS = 5000


def _load_assets() -> dict[str, bytes]:
    folder = resources.files("gateway.http") / "ui"
    return {name: (folder / name).read_bytes() for name in _ASSETS}


def router(service: GatewayService, auth: Auth) -> APIRouter:
    api = APIRouter(route_class=ExactJSONRoute)
    assets = _load_assets()

    def asset(name: str) -> Response:
        return Response(assets[name], media_type=_ASSETS[name], headers=_HEADERS)

    @api.get("/ui", include_in_schema=False)
    async def page() -> Response:
        return asset("index.html")

    @api.get("/ui/{name}", include_in_schema=False)
    async def page_asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, "no such file")
        return asset(name)

    @api.get("/v1/equity", dependencies=[Depends(auth.any_token)])
    async def get_equity() -> dict[str, Any]:
        """The trading day's equity: a point at each change the risk sweep saw since the day
        started, oldest first, with the day-start and peak equity (fractions elsewhere, money
        here)."""
        resets = service.journal.events("trading_day_reset", limit=1)
        since = datetime.fromisoformat(resets[0]["at"]) if resets else None
        points = [
            {"at": event["at"], "equity": event["equity"]}
            for event in reversed(service.journal.events("equity", limit=MAX_EQUITY_POINTS))
            if since is None or datetime.fromisoformat(event["at"]) >= since
        ]
        risk = service.engine.measures().as_json() if service.engine.started else None
        return {
            "day_start": since.isoformat() if since else None,
            "day_start_equity": risk["day_start_equity"] if risk else None,
            "peak_equity": risk["peak_equity"] if risk else None,
            "equity": risk["equity"] if risk else None,
            "points": points,
        }

    return api
