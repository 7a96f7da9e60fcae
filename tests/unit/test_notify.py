"""SystemdNotifier against a real AF_UNIX datagram socket, as systemd would hold it."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.ops.notify import SystemdNotifier

# WATCHDOG_USEC=200000 (0.2 s), so a ping every 0.1 s.
WATCHDOG_USEC = "200000"
PING_S = 0.1
# A safety deadline only: a passing run waits on events, never this long.
DEADLINE_S = 30.0


class Receiver:
    """The systemd end: a bound datagram socket.

    A datagram waits in the socket's queue from the moment ``sendto`` returns until it is read,
    so what :meth:`drain` finds was sent before the call: the tests reason about *what* was
    sent between two points of their own, never about how long anything took.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Read every datagram queued so far; return the new ones (kept in ``messages``)."""
        new = []
        while True:
            try:
                new.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages.extend(new)
        return new

    def pings(self) -> int:
        return self.messages.count("WATCHDOG=1")

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        """Drain until ``condition()`` holds, letting the event loop run in between."""
        deadline = time.monotonic() + DEADLINE_S
        self.drain()
        while not condition():
            assert time.monotonic() < deadline, f"never: {what} ({self.messages})"
            await asyncio.sleep(0.01)
            self.drain()

    def close(self) -> None:
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
    assert receiver.drain() == [
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
    assert receiver.drain() == ["STATUS=halted READY=1"]


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
    await asyncio.wait_for(_notifier(receiver).watchdog_loop(), timeout=DEADLINE_S)
    await asyncio.wait_for(SystemdNotifier.from_env({}).watchdog_loop(), timeout=DEADLINE_S)
    assert receiver.drain() == []


async def test_watchdog_pings_keep_coming_never_faster_than_the_interval(
    receiver: Receiver,
) -> None:
    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(notifier.watchdog_loop(), name="watchdog")
    await receiver.until("five pings", lambda: receiver.pings() >= 5)
    elapsed = loop.time() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert set(receiver.drain() + receiver.messages) == {"WATCHDOG=1"}
    # One ping at the start, then one per interval at most. A slow machine only lowers the
    # count, so this bound cannot fail for load; it fails for a loop that pings too often.
    assert receiver.pings() <= elapsed / PING_S + 2, (receiver.pings(), elapsed)


async def test_blocked_loop_sends_no_watchdog(receiver: Receiver) -> None:
    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(), name="watchdog")
    await receiver.until("three pings", lambda: receiver.pings() >= 3)

    receiver.drain()  # every ping sent so far is out of the way
    # A stuck event loop, on purpose: six ping intervals, three whole WatchdogSec. Only a
    # sender outside the loop (a thread) could ping meanwhile.
    time.sleep(6 * PING_S)  # noqa: ASYNC251
    assert receiver.drain() == [], "a ping was sent while the event loop was blocked"

    before = receiver.pings()
    await receiver.until(
        "pings again once the loop is free", lambda: receiver.pings() >= before + 3
    )
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_unhealthy_gateway_withholds_pings(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = True
    checks_while_sick = 0

    def health() -> bool:
        nonlocal checks_while_sick
        if not healthy:
            checks_while_sick += 1
        return healthy

    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(health=health), name="watchdog")
    await receiver.until("a ping while healthy", lambda: receiver.pings() >= 1)

    healthy = False
    receiver.drain()  # pings sent before the flag flipped
    before = receiver.pings()
    await receiver.until("three checks while sick", lambda: checks_while_sick >= 3)
    receiver.drain()
    assert receiver.pings() == before, "a ping went out while the health check failed"

    healthy = True
    before = receiver.pings()
    await receiver.until("a ping once healthy again", lambda: receiver.pings() > before)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    failures = [r for r in caplog.records if "health check failed" in r.getMessage()]
    assert len(failures) == 1  # once per unhealthy spell


async def test_health_check_that_raises_withholds_pings(receiver: Receiver) -> None:
    checks = 0

    def broken() -> bool:
        nonlocal checks
        checks += 1
        raise RuntimeError("journal unreachable")

    notifier = _notifier(receiver, WATCHDOG_USEC=WATCHDOG_USEC)
    task = asyncio.create_task(notifier.watchdog_loop(health=broken), name="watchdog")
    await receiver.until("three checks", lambda: checks >= 3)
    assert not task.done()  # the loop survives a broken health check
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    receiver.drain()
    assert receiver.messages == []


def test_a_long_start_step_keeps_extending_the_start_timeout(receiver: Receiver) -> None:
    """While the block runs (the journal's full integrity check after a crash), systemd hears
    EXTEND_TIMEOUT_USEC again and again; after it, nothing more; without systemd, nothing."""
    notifier = _notifier(receiver)
    with notifier.extending_start("checking the journal", every_s=0.05):
        time.sleep(0.3)
    during = receiver.drain()
    extends = [m for m in during if "EXTEND_TIMEOUT_USEC=150000" in m]
    assert len(extends) >= 3, during
    assert all("STATUS=checking the journal" in m for m in extends)
    time.sleep(0.15)
    assert receiver.drain() == []
    with SystemdNotifier(None).extending_start("x", every_s=0.01):
        pass  # a no-op notifier starts no thread and sends nothing


def test_a_stuck_start_step_stops_being_extended(receiver: Receiver) -> None:
    """Bounded: past most_s the step meets systemd's timeout as before."""
    notifier = _notifier(receiver)
    with notifier.extending_start("stuck", every_s=0.02, most_s=0.1):
        time.sleep(0.4)
    sent = len([m for m in receiver.drain() if "EXTEND_TIMEOUT_USEC" in m])
    assert 2 <= sent <= 7, sent
