"""The gateway's part in the firm: its link to PostgreSQL, wired to its own halt and kill switch.

Imported only when gateway.yaml has a ``firm:`` section, so a single host never loads psycopg.

- A firm halt halts this gateway (trigger ``firm_halt``); a firm kill also runs its kill switch,
  once per kill. A gateway that starts while a firm halt is in force starts HALTED.
- A local resume is refused (409 ``firm_halted``) while the firm halt is in force, and with
  ``on_disconnect: halt`` (409 ``firm_unreachable``) while PostgreSQL is out of reach.
- No contact with PostgreSQL for ``grace_s`` halts (``firm_unreachable``) with ``on_disconnect:
  halt``; the link keeps reconnecting, and once back a normal admin resume works.
- A start without PostgreSQL refuses to start (exit 2), unless this state dir already ran with
  the firm and ``on_disconnect: halt``: then it starts HALTED and keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, FirmDsnMissing, FirmSettings, GatewayConfig
from gateway.firm.control import FirmControl, firm_halt
from gateway.firm.errors import FirmError, FirmUnavailable
from gateway.firm.exposure import Figures, FirmExposure
from gateway.firm.link import FirmLink
from gateway.pipeline.engine import Gateway
from gateway.safety.halt import HaltManager, ResumeRefused
from gateway.safety.halt_state import HaltTrigger
from gateway.service.controls import Controls

log = logging.getLogger("gateway.service.firm")

MARKER = "firm.json"  # in the state dir: this gateway ran with the firm before


class FirmService:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        engine: Gateway,
        halt: HaltManager,
        controls: Controls,
        status: Callable[[], dict[str, Any]],
        state_dir: Path,
        environ: dict[str, str],
    ):
        assert config.firm is not None
        self.settings: FirmSettings = config.firm
        try:
            dsn = self.settings.dsn(environ)
        except FirmDsnMissing as exc:
            raise ConfigError([str(exc)]) from None
        self._engine = engine
        self._halt = halt
        self._controls = controls
        self._status = status
        self._marker = state_dir / MARKER
        self.link = FirmLink(
            self.settings, dsn, on_control=self._apply, on_lost=self._lost, on_back=self._back
        )
        self.exposure = FirmExposure(
            self.link,
            gateway_id=self.settings.gateway_id,
            account=self.settings.account_name,
            limit=self.settings.max_gross_exposure,
            figures=self._figures,
        )
        self._registered = False
        self._applied_seq = 0
        self._killing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publisher: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Before the broker: the firm halt in force is this gateway's before it can trade."""
        try:
            await self.link.open()
        except FirmUnavailable as exc:
            if self.settings.on_disconnect != "halt" or not self._marker.exists():
                raise
            log.critical("starting HALTED: %s", exc)
            self.link.report_lost_now(str(exc))
        else:
            await self._joined()
        self.link.start()

    async def _joined(self) -> None:
        await self.exposure.register()
        self._registered = True
        self._applied_seq = max(self._applied_seq, await self.exposure.applied_seq())
        self._marker.write_text(
            json.dumps(
                {"gateway_id": self.settings.gateway_id, "at": datetime.now(UTC).isoformat()}
            )
        )

    async def started(self) -> None:
        """After the broker and recovery: a firm kill this gateway has not run yet runs now;
        its row follows its book from here on."""
        self._engine.exposure_gate = self.exposure
        self._maybe_kill(self.link.control)
        self._publisher = asyncio.create_task(self.exposure.run(), name="firm-publish")

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 5.0)
        with contextlib.suppress(FirmError):
            async with self.link.work() as conn:
                await conn.execute(
                    "UPDATE firm_gateways SET state = 'stopped', heartbeat = now() "
                    "WHERE gateway_id = %s",
                    (self.settings.gateway_id,),
                )
        await self.link.close()

    async def step_down(self) -> None:
        """Deposed (an active/standby pair's lock lost with its session): this gateway's row
        stops counting the account, which the member that took over counts from now on."""
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        with contextlib.suppress(FirmError):
            async with self.link.work() as conn:
                await conn.execute(
                    "UPDATE firm_gateways SET role = 'standby', state = 'deposed', "
                    "gross_exposure = 0, heartbeat = now() WHERE gateway_id = %s",
                    (self.settings.gateway_id,),
                )
                await conn.execute(
                    "DELETE FROM firm_reservations WHERE gateway_id = %s",
                    (self.settings.gateway_id,),
                )

    # --- what the link tells -----------------------------------------------------------------

    def _apply(self, control: FirmControl) -> None:
        if not control.halted:
            log.warning(
                "firm halt lifted (seq %s): each gateway follows its own resume rules", control.seq
            )
            return
        self._halt.halt(
            f"firm halt: {control.reason}"[:500], HaltTrigger.FIRM_HALT, by=f"firm:{control.by}"
        )
        self._maybe_kill(control)

    def _maybe_kill(self, control: FirmControl) -> None:
        if not (control.halted and control.kill) or control.seq <= self._applied_seq:
            return
        if self._killing or not self._engine.ready:
            return  # run here by halt_firm, or by started() once the broker is connected
        self._applied_seq = control.seq
        self._spawn(self._run_kill(control), "firm-kill")

    async def _run_kill(self, control: FirmControl) -> None:
        await self._controls.kill(f"firm kill: {control.reason}"[:500], by=f"firm:{control.by}")
        with contextlib.suppress(FirmError):
            await self.exposure.set_applied(control.seq)

    def _lost(self, why: str) -> None:
        if self.settings.on_disconnect == "halt":
            self._halt.halt(why[:500], HaltTrigger.FIRM_UNREACHABLE, by="firm")
        else:
            log.error("%s; on_disconnect: continue, so trading goes on", why)

    def _back(self) -> None:
        if not self._registered:
            self._spawn(self._joined(), "firm-join")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception())

    def _figures(self) -> Figures | None:
        engine = self._engine
        if not engine.started:
            return None
        measures = engine.measures()
        marks = engine.quotes.marks()
        return Figures(
            state=engine.state.value,
            equity=measures.equity,
            gross_exposure=engine.book.gross_exposure(marks),
            heat=measures.portfolio_heat,
            in_flight=frozenset(engine.book.reservations),
        )

    # --- what the API asks -------------------------------------------------------------------

    def resume_guard(self) -> None:
        """ResumeRefused while the firm's halt is in force, or PostgreSQL out of reach."""
        control = self.link.control
        if control.halted:
            raise ResumeRefused(
                "firm_halted",
                f"the firm halt is in force ({control.reason}, by {control.by}): "
                "gateway firm resume lifts it first",
            )
        if self.settings.on_disconnect == "halt" and not self.link.up:
            raise ResumeRefused(
                "firm_unreachable",
                f"the firm's PostgreSQL is out of reach ({self.link.last_error}): "
                "resume once it is back",
            )

    async def request(
        self, reason: str, *, by: str, kill: bool
    ) -> tuple[dict[str, Any], str | None]:
        """``{"scope": "firm"}`` from this gateway's API: this gateway halts (and kills) at once,
        whatever PostgreSQL does; then the firm's halt is recorded for every other gateway.
        Returns the answer (the status, or the kill's report) and why the firm's part failed."""
        self._halt.halt(f"firm halt: {reason}"[:500], HaltTrigger.FIRM_HALT, by=by)
        error: str | None = None
        self._killing = kill
        try:
            async with self.link.work() as conn:
                control = await firm_halt(conn, reason, by=by, kill=kill)
            if kill:
                self._applied_seq = max(self._applied_seq, control.seq)
        except FirmError as exc:
            error = f"this gateway is halted, but the firm halt was not recorded: {exc}"
        finally:
            self._killing = False
        if not kill:
            return self._status(), error
        answer = await self._controls.kill(f"firm kill: {reason}"[:500], by=by)
        if error is None:
            with contextlib.suppress(FirmError):
                await self.exposure.set_applied(self._applied_seq)
        return answer, error

    def status(self) -> dict[str, Any]:
        control = self.link.control
        return {
            "gateway_id": self.settings.gateway_id,
            "account": self.settings.account_name,
            "connected": self.link.up,
            "error": self.link.last_error,
            "halt": control.to_json() if control.halted else None,
            "max_gross_exposure": (
                float(self.exposure.limit) if self.exposure.limit is not None else None
            ),
            "reserved": float(self.exposure.reserved),
        }
