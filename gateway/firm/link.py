"""One gateway's link to the firm's PostgreSQL: two sessions, reconnection, LISTEN/NOTIFY, and
the clock that fails closed.

    listen session  LISTEN on the firm channel; holds the session advisory lock of this
                    gateway_id (a second gateway with the same id refuses to start). Hooks run
                    on it at every (re)connect: the active/standby leader lock of an account
                    plugs in here, as one more session lock taken in ``session_hooks``.
    work session    short transactions (reservations, the gateway's row), one at a time.

The table is the truth: what a NOTIFY carries is applied at once, and at every (re)connect the
firm_control row is read again, so a notification missed while away is never missed for good.
Contact is proven by a round trip on the listen session every ``interval`` (the work session
proves itself by the gateway's row, published as often); with no proof for
``grace_s`` the link reports the loss (``on_lost``) once per outage, and keeps reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import psycopg

from gateway.config.firm import FirmSettings
from gateway.firm.control import CHANNEL, FirmControl, read_control
from gateway.firm.errors import FirmError, FirmUnavailable, GatewayIdInUse
from gateway.firm.schema import GATEWAY_LOCK_CLASS, Conn, migrate

log = logging.getLogger("gateway.firm.link")

# What losing the server looks like from here: the driver's errors, the socket's, a timeout.
LINK_ERRORS = (psycopg.Error, OSError, TimeoutError)
SessionHook = Callable[[Conn], Awaitable[None]]


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


async def connect(dsn: str, timeout_s: float) -> Conn:
    """An autocommit session, or FirmUnavailable naming why (never the DSN: it holds secrets)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=max(2, int(timeout_s))
            )
    except LINK_ERRORS as exc:
        raise FirmUnavailable(f"cannot connect to the firm's PostgreSQL: {one_line(exc)}") from exc


class FirmLink:
    def __init__(
        self,
        settings: FirmSettings,
        dsn: str,
        *,
        on_control: Callable[[FirmControl], None],
        on_lost: Callable[[str], None],
        on_back: Callable[[], None] = lambda: None,
        session_hooks: Sequence[SessionHook] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._dsn = dsn
        self._on_control = on_control
        self._on_lost = on_lost
        self._on_back = on_back
        self._hooks = list(session_hooks)
        self._monotonic = monotonic
        # Contact is proven often enough that an outage shows well within the grace period.
        self.interval = min(0.5, settings.grace_s / 4)
        self._listen: Conn | None = None
        self._work: Conn | None = None
        self._work_lock = asyncio.Lock()
        self._broken: str | None = None
        self._lost_reported = False
        self._last_ok = monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self.control = FirmControl()
        self.last_error: str | None = None
        self.reconnects = 0

    @property
    def up(self) -> bool:
        """Connected, and heard from within grace_s: a silent network is not up, even while a
        round trip on it is still waiting (psycopg's cancel of a hung query can take seconds)."""
        recent = self._monotonic() - self._last_ok < self.settings.grace_s
        return self._listen is not None and self._broken is None and recent

    @property
    def lost(self) -> bool:
        """True once this outage outlasted grace_s (reported through on_lost)."""
        return self._lost_reported

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> FirmControl:
        """The first connection: FirmUnavailable, GatewayIdInUse or FirmSchemaError when the
        gateway must not start this way; the firm halt in force otherwise."""
        await self._connect()
        return self.control

    def start(self) -> None:
        """The background tasks: notifications and contact, and the grace clock."""
        self._tasks = [
            asyncio.create_task(self._run(), name="firm-link"),
            asyncio.create_task(self._watch(), name="firm-grace"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop()

    # --- the work session --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def work(self, timeout_s: float | None = None) -> AsyncIterator[Conn]:
        """One transaction on the work session; FirmUnavailable when the link is down or the
        transaction fails on the way (the link then reconnects)."""
        if not self.up or self._work is None:
            raise FirmUnavailable(f"the firm's PostgreSQL is out of reach ({self.last_error})")
        async with self._work_lock:
            conn = self._work
            if not self.up or conn is None:  # lost while this waited for its turn
                raise FirmUnavailable(f"the firm's PostgreSQL is out of reach ({self.last_error})")
            try:
                async with asyncio.timeout(timeout_s or max(1.0, self.interval * 4)):
                    async with conn.transaction():
                        yield conn
            except LINK_ERRORS as exc:
                self.broken(exc)
                raise FirmUnavailable(f"the firm's PostgreSQL failed: {one_line(exc)}") from exc

    def broken(self, exc: BaseException) -> None:
        """Something failed on a session: drop both, reconnect (the run loop sees it)."""
        if self._broken is None:
            self._broken = one_line(exc)
            self.last_error = self._broken
            log.error("firm link lost: %s", self._broken)

    # --- internals ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        timeout = max(2.0, self.settings.grace_s)
        listen = await connect(self._dsn, timeout)
        try:
            work = await connect(self._dsn, timeout)
        except FirmError:
            await listen.close()
            raise
        try:
            async with asyncio.timeout(timeout):
                await self._prepare(listen, work)
        except BaseException as exc:
            await listen.close()
            await work.close()
            if isinstance(exc, LINK_ERRORS):
                raise FirmUnavailable(f"the firm's PostgreSQL failed: {one_line(exc)}") from exc
            raise
        self._listen, self._work, self._broken = listen, work, None
        self._contact()
        self._apply(self.control, force=True)
        if self._lost_reported:
            log.warning("firm link back after an outage")
        self._lost_reported = False
        self._on_back()

    async def _prepare(self, listen: Conn, work: Conn) -> None:
        await migrate(work)
        cur = await listen.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
            (GATEWAY_LOCK_CLASS, self.settings.gateway_id),
        )
        row = await cur.fetchone()
        if not row or not row[0]:
            raise GatewayIdInUse(
                f"firm.gateway_id {self.settings.gateway_id!r} is in use by another running "
                "gateway of this firm: every gateway needs its own id"
            )
        for hook in self._hooks:
            await hook(listen)
        # LISTEN before reading the row: a change between the two is heard, not lost.
        await listen.execute(f"LISTEN {CHANNEL}")
        self.control = await read_control(work)

    async def _drop(self) -> None:
        for conn in (self._listen, self._work):
            if conn is not None:
                with contextlib.suppress(*LINK_ERRORS):
                    await conn.close()
        self._listen = self._work = None

    def _contact(self) -> None:
        self._last_ok = self._monotonic()
        self.last_error = None if self._broken is None else self.last_error

    def _apply(self, control: FirmControl, *, force: bool = False) -> None:
        if not force and control.seq <= self.control.seq:
            return  # an older change, heard late
        self.control = control
        try:
            self._on_control(control)
        except Exception:
            # The firm's halt must still hold: the caller's handler logs what failed.
            log.exception("applying the firm control (seq %s) failed", control.seq)

    async def _run(self) -> None:
        while True:
            if self._listen is None:
                try:
                    await self._connect()
                    self.reconnects += 1
                except (FirmError, *LINK_ERRORS) as exc:
                    self.last_error = one_line(exc)
                    await asyncio.sleep(self.interval)
                continue
            try:
                await self._listen_once(self._listen)
            except (FirmError, *LINK_ERRORS) as exc:
                self.broken(exc)
            if self._broken is not None:
                await self._drop()

    async def _listen_once(self, listen: Conn) -> None:
        """Notifications for one interval, then a round trip on each session."""
        async for note in listen.notifies(timeout=self.interval):
            self._contact()
            try:
                control = FirmControl.from_json(note.payload)
            except ValueError as exc:
                log.error("firm notification ignored: %s", exc)
                continue
            self._apply(control)
        if self._broken is not None:
            return
        # Only this session's round trip here: waiting for the work session (busy with
        # reservations) would leave notifications unread meanwhile. The work session proves
        # itself by the gateway's row, published every interval (a failure there breaks both).
        async with asyncio.timeout(self.interval * 2):
            await listen.execute("SELECT 1")
        self._contact()

    async def _watch(self) -> None:
        """The grace clock: no contact for grace_s is an outage, reported once."""
        while True:
            await asyncio.sleep(min(0.1, self.interval))
            silent = self._monotonic() - self._last_ok
            if silent >= self.settings.grace_s and not self._lost_reported:
                self._lost_reported = True
                why = self.last_error or "no answer"
                if self._listen is not None:
                    self.broken(TimeoutError(f"no answer for {silent:.1f}s"))
                try:
                    self._on_lost(
                        f"the firm's PostgreSQL unreachable for {silent:.1f}s "
                        f"(grace_s {self.settings.grace_s:g}): {why}"
                    )
                except Exception:
                    log.exception("reporting the firm link's loss failed")

    def report_lost_now(self, why: str) -> None:
        """At a start without PostgreSQL: the outage is reported at once, not after grace_s."""
        self._lost_reported = True
        self.last_error = why
        self._on_lost(why)
