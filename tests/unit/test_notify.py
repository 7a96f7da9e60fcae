"""SystemdNotifier against a real AF_UNIX datagram socket, as systemd would hold it."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops.notify import SystemdNotifier

# WATCHDOG_USEC=200000 (0.2 s), so a ping every 0.1 s.
WATCHDOG_USEC = "200000"
PING_S = 0.1


class Receiver:
    """The systemd end: a bound datagram socket read by a thread, with receive times.

    A thread, not the event loop, so that pings (or their absence) are timed correctly even
    while the test blocks the loop.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, count: int, timeout: float = 2.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return [text for _, text in self.messages]

    def ping_times(self) -> list[float]:
        return [at for at, text in self.messages if text == "WATCHDOG=1"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def any_receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    """A socket on the file system (systemd's usual) and one in the abstract namespace."""
    if request.param == "path":
        # A short directory: AF_UNIX paths are limited to ~108 bytes, pytest's tmp_path is long.
        directory = tempfile.mkdtemp(prefix="sdn-")
        address = os.path.join(directory, "notify")
    else:
        address = f"@gateway-test-{uuid.uuid4().hex}"
    rx = Receiver(address)
    yield rx
    rx.close()
    if request.param == "path":
        Path(address).unlink(missing_ok=True)
        os.rmdir(directory)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver(f"@gateway-test-{uuid.uuid4().hex}")
    yield rx
    rx.close()


def _notifier(rx: Receiver, **env: str) -> SystemdNotifier:
    return SystemdNotifier.from_env({"NOTIFY_SOCKET": rx.address, **env})


def test_state_messages(any_receiver: Receiver) -> None:
    receiver = any_receiver
    notifier = _notifier(receiver)
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("trading: 3 open orders")
    assert notifier.stopping()
    assert notifier.watchdog()
    assert notifier.notify(errno=0)
    assert notifier.ready(status="ready")
    notifier.close()
    assert receiver.wait_for(6) == [
        "READY=1",
        "STATUS=trading: 3 open orders",
        "STOPPING=1",
        "WATCHDOG=1",
        "ERRNO=0",
        "READY=1\nSTATUS=ready",
    ]


def test_status_cannot_inject_fields(receiver: Receiver) -> None:
    notifier = _notifier(receiver)
    notifier.status("halted\nREADY=1")
    assert receiver.wait_for(1) == ["STATUS=halted READY=1"]


def test_noop_without_notify_socket() -> None:
    notifier = SystemdNotifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False


def test_send_failure_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert notifier.ready() is False
    assert notifier.ready() is False
    warnings = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not at every attempt


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": WATCHDOG_USEC}, PING_S),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier.watchdog_interval_s(env) == expected


async def test_watchdog_loop_returns_when_watchdog_is_off(receiver: Receiver) -> None:
    # No WATCHDOG_USEC, then no NOTIFY_SOCKET either: both return at once (no hang, no ping).
    await asyncio.wait_for(_notifier(receiver).watchdog_loop(), timeout=1)
    await asyncio.wait_for(SystemdNotifier.from_env({}).watchdog_loop(), timeout=1)
    await asyncio.sleep(0.05)
    assert receiver.messages == []


async def test_watchdog_cadence(receiver: Receiver) -> None:
    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(), name="watchdog")
    await asyncio.sleep(0.55)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.05)  # let the receiver thread take the last datagram

    pings = receiver.ping_times()
    # Pings at ~0, 0.1, ..., 0.5 s; a loaded CI machine may lose one at the edge.
    assert 5 <= len(pings) <= 7, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.07 <= gap <= 0.2 for gap in gaps), gaps
    assert {text for _, text in receiver.messages} == {"WATCHDOG=1"}


async def test_blocked_loop_sends_no_watchdog(receiver: Receiver) -> None:
    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(), name="watchdog")
    await asyncio.sleep(0.35)

    blocked_from = time.monotonic()
    # A stuck event loop, on purpose: six ping intervals, three whole WatchdogSec.
    time.sleep(0.6)  # noqa: ASYNC251
    blocked_until = time.monotonic()

    await asyncio.sleep(0.35)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.05)

    pings = receiver.ping_times()
    before = [t for t in pings if t < blocked_from]
    during = [t for t in pings if blocked_from <= t < blocked_until]
    after = [t for t in pings if t >= blocked_until]
    assert len(before) >= 3, pings
    assert during == [], "a ping was sent while the event loop was blocked"
    assert len(after) >= 3, "pings did not resume once the loop was free"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) >= 0.55, gaps  # the hole systemd would see
    assert sorted(gaps)[-2] < 0.2, gaps  # and only that one


async def test_unhealthy_gateway_withholds_pings(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = True
    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(health=lambda: healthy), name="watchdog")
    await asyncio.sleep(0.25)
    healthy = False
    sick_from = time.monotonic()
    await asyncio.sleep(0.4)
    healthy = True
    sick_until = time.monotonic()
    await asyncio.sleep(0.25)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.05)

    pings = receiver.ping_times()
    # Allow for a ping already in flight when the flag flipped.
    assert [t for t in pings if sick_from + 0.01 <= t < sick_until] == []
    assert any(t < sick_from for t in pings)
    assert any(t >= sick_until for t in pings)
    failures = [r for r in caplog.records if "health check failed" in r.getMessage()]
    assert len(failures) == 1  # once per unhealthy spell


async def test_health_check_that_raises_withholds_pings(receiver: Receiver) -> None:
    def broken() -> bool:
        raise RuntimeError("journal unreachable")

    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(health=broken), name="watchdog")
    await asyncio.sleep(0.3)
    assert not task.done()  # the loop survives a broken health check
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert receiver.ping_times() == []
