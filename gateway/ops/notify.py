"""systemd service notifications (sd_notify) and the event-loop watchdog.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to the AF_UNIX
socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). That is about
20 lines of ``socket`` code, so it is written here rather than taken from a package: the PyPI
options are either unmaintained for years (``sdnotify``) or a C extension that needs libsystemd
headers to build (``systemd-python``), and both are more to audit than this file.

``WATCHDOG=1`` is sent by :meth:`SystemdNotifier.watchdog_loop`, a coroutine on the gateway's
event loop: if the loop is stuck (a blocking call, a busy coroutine), no ping goes out and
systemd kills and restarts the service after ``WatchdogSec``. A thread would keep pinging
while the loop is dead, which is exactly what the watchdog exists to catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

__all__ = ["SystemdNotifier"]

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state changes to systemd; every method is a no-op when not run by systemd.

    Build it with :meth:`from_env`. Sending never raises: a lost notification must not take
    the gateway down, so failures are logged (once until the next success) and reported by the
    ``bool`` that :meth:`notify` returns.
    """

    def __init__(self, address: str | None, *, watchdog_ping_s: float | None = None) -> None:
        """``address``: the NOTIFY_SOCKET value (None: a no-op notifier).

        ``watchdog_ping_s``: seconds between WATCHDOG=1 pings (None: watchdog off).
        """
        self.address = address
        self.watchdog_ping_s = watchdog_ping_s
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """The notifier systemd asked for through NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID."""
        address = environ.get("NOTIFY_SOCKET") or None
        return cls(address, watchdog_ping_s=cls.watchdog_interval_s(environ))

    @staticmethod
    def watchdog_interval_s(environ: Mapping[str, str] = os.environ) -> float | None:
        """Half of WatchdogSec in seconds (systemd's advice), or None when the watchdog is off.

        Off when WATCHDOG_USEC is unset, not a positive integer, or when WATCHDOG_PID names
        another process (the variables were inherited by a child, which must not ping).
        """
        raw = environ.get("WATCHDOG_USEC")
        if not raw:
            return None
        try:
            usec = int(raw)
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw)
            return None
        if usec <= 0:
            return None
        pid = environ.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return None
        return usec / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self.address is not None

    def notify(self, **fields: str | int | float) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; keys are upper-cased. True when sent.

        Newlines in values are replaced by spaces: a newline would start a new field, so a
        status text could otherwise forge READY=1 or STOPPING=1.
        """
        if self.address is None or not fields:
            return False
        message = "\n".join(
            f"{key.upper()}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()
        )
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full receive queue: drop the message instead.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(message.encode(), target)
        except OSError as exc:
            if not self._failing:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("sd_notify to %s works again", self.address)
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: startup finished (broker connected, journal open, halt state restored)."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """STATUS=text: the one line `systemctl status` shows."""
        return self.notify(STATUS=text)

    def stopping(self) -> bool:
        """STOPPING=1: graceful shutdown has begun."""
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """WATCHDOG=1: one keep-alive ping."""
        return self.notify(WATCHDOG=1)

    async def watchdog_loop(self, *, health: Callable[[], bool] | None = None) -> None:
        """Ping WATCHDOG=1 every half WatchdogSec until cancelled; returns at once when off.

        Runs on the event loop on purpose (see the module docstring). ``health`` is called
        before each ping; when it returns False (or raises), the ping is withheld, so a gateway
        that is alive but broken inside is restarted too. Keep ``health`` cheap and
        non-blocking: it runs on the loop.
        """
        interval = self.watchdog_ping_s
        if self.address is None or interval is None:
            return
        withheld = False
        while True:
            error: Exception | None = None
            try:
                healthy = health is None or bool(health())
            except Exception as exc:
                healthy, error = False, exc
            if healthy:
                self.watchdog()
                if withheld:
                    log.info("watchdog health check passes again; pinging")
                withheld = False
            elif not withheld:
                # Logged once per unhealthy spell, not at every interval.
                log.error("watchdog health check failed; withholding pings", exc_info=error)
                withheld = True
            await asyncio.sleep(interval)

    @contextlib.contextmanager
    def extending_start(
        self, status: str, *, every_s: float = 10.0, most_s: float = 3600.0
    ) -> Iterator[None]:
        """Keep systemd's start timeout ahead of a long start step (EXTEND_TIMEOUT_USEC) while
        the block runs, from a thread: the step blocks the main thread (SQLite's full integrity
        check of a journal after a crash reads the whole file, minutes at millions of signals,
        past TimeoutStartSec, and systemd would kill the start it is waiting for, again and
        again). Bounded by ``most_s``: a step stuck for longer meets the timeout as before."""
        if not self.enabled:
            yield
            return
        done = threading.Event()
        ends = time.monotonic() + most_s

        def extend() -> None:
            while time.monotonic() < ends:
                usec = int((every_s * 3) * 1_000_000)  # three missed rounds before it expires
                self.notify(EXTEND_TIMEOUT_USEC=usec, STATUS=status)
                if done.wait(every_s):
                    return

        thread = threading.Thread(target=extend, name="systemd-extend-start", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=every_s)

    def close(self) -> None:
        """Close the socket (a later notification opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
