"""Running the service: uvicorn around the API, systemd notifications, graceful stop.

The service starts (broker connected, journal open, halt state restored, recovery done) before
uvicorn's lifespan begins; READY=1 goes out once it has. A start that fails ends ``serve`` with
that exception, not with uvicorn's lifespan traceback and its own exit code. On SIGTERM uvicorn
stops accepting, in-flight requests finish, the service journals and closes the broker, and the
process exits 0 within ``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.loops.auto import auto_loop_factory

from gateway.config import ConfigError, GatewayConfig
from gateway.http.api import create_app
from gateway.http.auth import ensure_tokens
from gateway.ops.logs import Redactor
from gateway.ops.looplag import HeapKeeper, LoopLagProbe
from gateway.ops.notify import SystemdNotifier
from gateway.service import GatewayService

log = logging.getLogger("gateway.http.server")

LIVE_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  LIVE TRADING: orders from this gateway reach a real market with    !!
!!  real money, broker {broker}. Halt: gateway halt REASON             !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


class GatewayServer(uvicorn.Server):
    """uvicorn with the service's start in front of its own, and a clean stop that exits 0."""

    def __init__(
        self,
        config: uvicorn.Config,
        start: Callable[[], Awaitable[None]],
        end_streams: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self._start_service = start
        self._end_streams = end_streams

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # Started here rather than in the lifespan: uvicorn logs a failed lifespan's whole
        # traceback at ERROR and exits the process itself; from here the exception leaves
        # server.run() like any other, for serve()'s caller to report.
        await self._start_service()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Event streams never finish on their own: ended first, or the graceful shutdown would
        # wait for them until its timeout.
        self._end_streams()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn re-raises SIGTERM after a graceful shutdown (the process then dies of it); a
        # gateway that stopped cleanly exits 0, which is what systemd's Restart=on-failure expects.
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def build_server(
    config: GatewayConfig,
    service: GatewayService | None = None,
    *,
    redactor: Redactor | None = None,
    new_journal: bool = False,
) -> tuple[GatewayServer, GatewayService]:
    if service is None:
        notifier = SystemdNotifier.from_env(os.environ)
        # Opening the journal after a crash runs its full integrity check (seconds per million
        # signals): systemd hears that the start goes on instead of killing it at its timeout.
        with notifier.extending_start("checking and opening the journal"):
            service = GatewayService(config, new_journal=new_journal)
    else:
        notifier = SystemdNotifier.from_env(service.environ)
    tokens = ensure_tokens(config.gateway.state_dir, service.environ)
    if redactor is not None:
        # Generated tokens are not in the environment: tell the log redactor about them too.
        redactor.add([tokens.strategy, tokens.admin])
    heap = HeapKeeper()

    async def start() -> None:
        if config.gateway.mode == "live":
            log.critical(LIVE_BANNER.format(broker=config.gateway.broker))
        await service.start()
        heap.settle()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The service has started by now (see GatewayServer.startup); this runs around serving.
        watchdog = asyncio.create_task(
            notifier.watchdog_loop(health=lambda: service.engine.ready), name="systemd-watchdog"
        )
        status_task = asyncio.create_task(_status_loop(service, notifier), name="systemd-status")
        lag = LoopLagProbe(service.metrics.set_event_loop_lag)
        lag_task = asyncio.create_task(lag.run(), name="event-loop-lag")
        heap_task = asyncio.create_task(heap.run(), name="heap-keeper")
        notifier.ready(_status_line(service))
        # Which loop and HTTP parser serve is the first thing to know about the API's speed.
        log.info(
            "serving with %s and %s",
            type(asyncio.get_running_loop()).__module__,
            getattr(uv_config, "http_protocol_class", type).__module__,
        )
        try:
            yield
        finally:
            notifier.stopping()
            service.engine.ready = False
            for task in (watchdog, status_task, lag_task, heap_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            heap.close()
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
    return GatewayServer(uv_config, start, service.feed.close), service


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
    """Run until stopped; 0 after a clean stop.

    Raises what stopped the start: the service's construction or its start (the broker
    unreachable or refusing, the journal unreadable, recovery failing). The caller decides
    what each means (see ``gateway.cli``).
    """
    if config.firm is not None and config.firm.account is not None:
        # A member of an active/standby pair: the journal in PostgreSQL, the lock decides.
        try:
            from gateway.http.pair import serve_pair
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "psycopg":
                raise
            missing = "firm: needs psycopg, which is not installed"
            raise ConfigError([f"{missing}: pip install 'execution-gateway[firm]'"]) from None

        # The loop uvicorn's own run() picks (uvloop when installed), not asyncio.run's default.
        with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
            return runner.run(serve_pair(config, redactor=redactor, new_journal=new_journal))
    server, _ = build_server(config, redactor=redactor, new_journal=new_journal)
    server.run()
    return 0


__all__: list[Any] = ["GatewayServer", "build_server", "serve"]
