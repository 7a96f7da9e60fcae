"""Serving one member of an active/standby pair (``firm.account`` set: the pair's journal is in
PostgreSQL, and the account's session advisory lock decides who trades).

    standby  the lock is held elsewhere: no journal, no broker (the simulated account's file is
             not opened), a small API that answers /readyz 503 ``{"status": "standby"}``,
             /v1/status with role standby, and everything else under /v1/ 503
             ``{"code": "standby"}``. The lock is tried every takeover_s/5.
    active   the lock is ours: the journal opens on the session holding it, and the gateway
             starts as at any start (recovery, reconciliation), then trades.
    deposed  the session holding the lock is gone while the process lives (terminated, the
             network cut): the next commit fails, the journal's failure path halts the gateway
             (``journal_failure``), a heartbeat write finds it within takeover_s/5 when nothing
             else writes, and the broker is closed. Nothing reconnects the journal: a restart
             rejoins the pair, as the standby while the other member holds the lock; under
             systemd the readiness it lost withholds the watchdog pings, which restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import psycopg
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.config import ConfigError, GatewayConfig
from gateway.config.firm import FirmDsnMissing, FirmSettings
from gateway.firm.errors import FirmUnavailable
from gateway.firm.pair import PairLock
from gateway.http.auth import Tokens, ensure_tokens
from gateway.http.deps import make_auth
from gateway.http.server import GatewayServer, build_server
from gateway.ops.logs import Redactor
from gateway.ops.notify import SystemdNotifier
from gateway.service import GatewayService
from gateway.store.pg import PgDriver, PgEventLog

log = logging.getLogger("gateway.http.pair")


def poll_interval(settings: FirmSettings) -> float:
    """How often a standby tries the lock (and an active proves its session)."""
    return min(1.0, settings.takeover_s / 5)


def standby_app(settings: FirmSettings, tokens: Tokens, lock: PairLock) -> FastAPI:
    app = FastAPI(title="execution-gateway (standby)", docs_url=None, redoc_url=None)
    auth = make_auth(tokens)

    def answer() -> dict[str, Any]:
        return {
            "state": "standby",
            "role": "standby",
            "firm": {
                "gateway_id": settings.gateway_id,
                "account": settings.account_name,
                "role": "standby",
                "connected": lock.last_error is None,
                "error": lock.last_error,
            },
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse(status_code=503, content={"status": "standby"})

    @app.get("/v1/status", dependencies=[Depends(auth.any_token)])
    async def status() -> dict[str, Any]:
        return answer()

    @app.api_route(
        "/v1/{rest:path}",
        methods=["GET", "POST", "PUT", "DELETE"],
        dependencies=[Depends(auth.any_token)],
    )
    async def elsewhere(request: Request, rest: str) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={
                "code": "standby",
                "message": f"this gateway is the standby of account {settings.account_name}: "
                "the active member of the pair trades (halt or kill it there, or every gateway "
                "with gateway firm halt)",
            },
        )

    return app


async def wait_as_standby(
    config: GatewayConfig, settings: FirmSettings, lock: PairLock, environ: Mapping[str, str]
) -> bool:
    """Serve the standby API until the lock is ours (True) or the process is told to stop."""
    tokens = ensure_tokens(config.gateway.state_dir, dict(environ))
    api = config.gateway.api

    async def nothing_to_start() -> None:
        return None

    # GatewayServer: a SIGTERM while standing by exits 0, like the active's clean stop.
    server = GatewayServer(
        uvicorn.Config(
            standby_app(settings, tokens, lock),
            host=api.host,
            port=api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        ),
        nothing_to_start,
    )
    serving = asyncio.create_task(server.serve(), name="standby-api")
    # systemd (Type=notify, WatchdogSec) sees a standby as started and alive: waiting is its job.
    notifier = SystemdNotifier.from_env(environ)
    notifier.ready(f"STANDBY: account {settings.account_name} is traded by the other member")
    pings = asyncio.create_task(notifier.watchdog_loop(), name="standby-watchdog")
    log.warning(
        "standby for account %s: another gateway holds its lock; trying every %.2fs",
        settings.account_name,
        poll_interval(settings),
    )
    lock.announce_standby()
    leads = False
    while not serving.done():
        await asyncio.sleep(poll_interval(settings))
        try:
            leads = lock.try_lead()
        except FirmUnavailable as exc:
            log.error("standby: %s", exc)  # tried again on the next round
            continue
        if leads:
            break
        lock.announce_standby()
    pings.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pings
    if leads:
        notifier.status(f"TAKING OVER: account {settings.account_name}")
    notifier.close()
    server.should_exit = True
    await serving
    return leads


async def watch_session(service: GatewayService, db: PgDriver, interval_s: float) -> None:
    """An active's proof that it still holds the lock: a heartbeat write every interval. Once
    the session is gone the gateway halts (the journal's failure path) and closes its broker."""
    while True:
        await asyncio.sleep(interval_s)
        if service.engine.shutting_down:
            return  # a clean stop closes the journal's session itself
        if service.journal.failure is None:
            service.journal.put("pair.heartbeat", {"pid": os.getpid()})
        if db.conn.closed or db.conn.broken:
            log.critical(
                "deposed: the PostgreSQL session holding the account's lock is gone; this "
                "gateway stays halted and closes its broker (a restart rejoins as standby)"
            )
            with contextlib.suppress(Exception):
                await service.engine.stop()
            if service.firm is not None:
                await service.firm.step_down()
            return


async def serve_pair(
    config: GatewayConfig, *, redactor: Redactor | None = None, new_journal: bool = False
) -> int:
    settings = config.firm
    assert settings is not None
    environ = dict(os.environ)
    try:
        dsn = settings.dsn(environ)
    except FirmDsnMissing as exc:
        raise ConfigError([str(exc)]) from None
    lock = PairLock(settings, dsn)
    if not lock.try_lead() and not await wait_as_standby(config, settings, lock, environ):
        lock.close()
        return 0
    log.warning("active for account %s: the lock is ours", settings.account_name)
    try:
        lock.take_over_rows()
    except psycopg.Error as exc:  # the firm link reports PostgreSQL's state; the journal decides
        log.error("the pair's other rows in the firm were not taken over: %s", exc)
    db = lock.journal()
    account = settings.account_name
    service = GatewayService(
        config,
        new_journal=new_journal,
        journal_db=db,
        event_log=lambda: PgEventLog(dsn, account),
    )
    server, _ = build_server(config, service, redactor=redactor)
    watch = asyncio.create_task(watch_session(service, db, poll_interval(settings)))
    try:
        await server.serve()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    return 0
