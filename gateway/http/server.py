"""Running the service: uvicorn around the API, systemd notifications, graceful stop.

READY=1 goes out only once the broker is connected, the journal open and the halt state restored
(the service's start). On SIGTERM uvicorn stops accepting, in-flight requests finish, the service
journals and closes the broker, and the process exits 0 within ``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.config import GatewayConfig
from gateway.http.api import create_app
from gateway.http.auth import ensure_tokens
from gateway.ops.logs import Redactor
from gateway.ops.notify import SystemdNotifier
from gateway.service import GatewayService

log = logging.getLogger("gateway.http.server")

LIVE_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  LIVE TRADING: orders from this gateway reach a real market with    !!
!!  real money, broker {broker}. Halt: gateway halt REASON             !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


class _GatewayServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown (the process then dies of it);
    a gateway that stopped cleanly exits 0, which is what systemd's Restart=on-failure expects."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def build_server(
    config: GatewayConfig,
    service: GatewayService | None = None,
    *,
    redactor: Redactor | None = None,
    new_journal: bool = False,
) -> tuple[uvicorn.Server, GatewayService]:
    service = service or GatewayService(config, new_journal=new_journal)
    tokens = ensure_tokens(config.gateway.state_dir, service.environ)
    if redactor is not None:
        # Generated tokens are not in the environment: tell the log redactor about them too.
        redactor.add([tokens.strategy, tokens.admin])
    notifier = SystemdNotifier.from_env(service.environ)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.gateway.mode == "live":
            log.critical(LIVE_BANNER.format(broker=config.gateway.broker))
        await service.start()
        watchdog = asyncio.create_task(
            notifier.watchdog_loop(health=lambda: service.engine.ready), name="systemd-watchdog"
        )
        status_task = asyncio.create_task(_status_loop(service, notifier), name="systemd-status")
        notifier.ready(_status_line(service))
        try:
            yield
        finally:
            notifier.stopping()
            service.engine.ready = False
            for task in (watchdog, status_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.stop()
            notifier.close()

    app = create_app(service, tokens, lifespan=lifespan)
    uv_config = uvicorn.Config(
        app,
        host=config.gateway.api.host,
        port=config.gateway.api.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(config.gateway.shutdown_timeout_s),
        lifespan="on",
    )
    return _GatewayServer(uv_config), service


def _status_line(service: GatewayService) -> str:
    summary = service.halt.summary()
    state = service.engine.state.value.upper()
    if summary:
        return f"{state}: {summary['trigger']}: {summary['reason']}"
    return state


async def _status_loop(service: GatewayService, notifier: SystemdNotifier) -> None:
    last = ""
    while True:
        line = _status_line(service)
        if line != last:
            notifier.status(line)
            last = line
        await asyncio.sleep(1.0)


def serve(
    config: GatewayConfig, *, redactor: Redactor | None = None, new_journal: bool = False
) -> int:
    server, _ = build_server(config, redactor=redactor, new_journal=new_journal)
    server.run()
    return 0 if server.started else 1


__all__: list[Any] = ["build_server", "serve"]
