"""Helpers for the flood tests: many concurrent HTTP clients against a real ``gateway serve``,
a raw event-stream follower that keeps every frame it is sent (it never drops a double), and
read-only views of the journal and of the simulated broker's own state file.

Every check reads the journal and the broker's state, never a timing."""

from __future__ import annotations

import contextlib
import json
import os
import signal as signal_module
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, STRATEGY_TOKEN

HEADERS = {"Authorization": f"Bearer {STRATEGY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENTS = 16
INITIAL_CASH = Decimal(100000)  # tests/conftest.py's simulated account
# Rate limit, shorts and protective stops out of the way: the flood is about the journal.
RISK: dict[str, Any] = {"pre_trade": {"max_orders_per_second": 1_000_000, "allow_short": True}}


def body(client_no: int, i: int, prefix: str = "f") -> dict[str, Any]:
    """A distinct signal: market buys and sells on two symbols, and every fourth a resting
    limit (it stays open at the broker, so the broker holds orders of several kinds)."""
    symbol = ("AAPL", "MSFT")[(client_no + i) % 2]
    out: dict[str, Any] = {
        "signal_id": f"{prefix}{client_no}-{i}",
        "strategy": f"strat{client_no % 4}",
        "symbol": symbol,
        "side": "buy" if (client_no + i) % 3 else "sell",
        "quantity": 1 + i % 3,
    }
    if i % 4 == 3:
        passive = {"AAPL": (190, 210), "MSFT": (390, 430)}[symbol]
        out.update(order_type="limit", limit_price=passive[0 if out["side"] == "buy" else 1])
    return out


@dataclass
class Answer:
    status: int
    text: str
    replayed: str | None


@dataclass
class Flood:
    """``clients`` threads, each posting its own ``per_client`` signals one after another,
    until it has sent them all, ``stop`` is set, or the gateway stops answering."""

    url: str
    per_client: int
    clients: int = CLIENTS
    prefix: str = "f"
    shared: bool = False  # every client sends the same signals (duplicates racing)
    # (pid, n): the client that receives the n-th answer kills pid with SIGKILL at once, so
    # the process dies with that answer just given (nothing after it had time to run).
    kill_at: tuple[int, int] | None = None
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    every_answer: list[tuple[str, Answer]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, client_no: int) -> None:
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=30.0) as client:
            for i in range(self.per_client):
                if self.stop.is_set():
                    return
                signal = body(0 if self.shared else client_no, i, self.prefix)
                with self._lock:
                    self.sent[signal["signal_id"]] = signal
                try:
                    response = client.post("/v1/signals", json=signal)
                except httpx.HTTPError:
                    return  # the gateway died under us: this one got no answer
                answer = Answer(
                    response.status_code,
                    response.text,
                    response.headers.get("Idempotent-Replayed"),
                )
                with self._lock:
                    self.answers.setdefault(signal["signal_id"], answer)
                    self.every_answer.append((signal["signal_id"], answer))
                    if self.kill_at is not None and len(self.every_answer) == self.kill_at[1]:
                        os.kill(self.kill_at[0], signal_module.SIGKILL)

    def start(self) -> Flood:
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def answered(self) -> int:
        with self._lock:
            return len(self.every_answer)

    def wait_answered(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.answered() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.answered()} of {count} answers in {timeout_s}s")
            if not any(t.is_alive() for t in self._threads):
                raise AssertionError(f"the clients stopped after {self.answered()} answers")
            time.sleep(0.002)

    def join(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.1))
        assert not any(t.is_alive() for t in self._threads), "a client never finished"


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout_s}s: {what}")
        time.sleep(0.05)


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def journal(state_dir: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(_ro(state_dir / "journal.sqlite3")) as db:
        return [tuple(row) for row in db.execute(sql, args)]


def broker(sim_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(_ro(sim_path)) as db:
        return [tuple(row) for row in db.execute(sql, args)]


def journaled_positions(state_dir: Path) -> dict[str, Decimal]:
    """Signed sum of what the journal's orders record as filled, by symbol."""
    rows = journal(state_dir, "SELECT symbol, side, filled_quantity FROM orders")
    return _signed(rows)


def journaled_fills(state_dir: Path) -> dict[str, Decimal]:
    """Signed sum of the journal's fills (GET /v1/fills, the stream's fill events), by symbol."""
    return _signed(journal(state_dir, "SELECT symbol, side, quantity FROM fills"))


def orders_missing_fills(state_dir: Path) -> dict[str, tuple[str, str]]:
    """The journal's orders whose filled quantity is not the sum of their journaled fills:
    {client_order_id: (filled_quantity, sum of fills)}."""
    fills: dict[str, Decimal] = {}
    for coid, quantity in journal(state_dir, "SELECT client_order_id, quantity FROM fills"):
        fills[coid] = fills.get(coid, Decimal(0)) + Decimal(quantity)
    out = {}
    for coid, filled in journal(state_dir, "SELECT client_order_id, filled_quantity FROM orders"):
        if Decimal(filled) != fills.get(coid, Decimal(0)):
            out[coid] = (filled, str(fills.get(coid, Decimal(0))))
    return out


def _signed(rows: list[tuple[Any, ...]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for symbol, side, quantity in rows:
        sign = 1 if side == "buy" else -1
        out[symbol] = out.get(symbol, Decimal(0)) + sign * Decimal(quantity)
    return {s: q for s, q in out.items() if q != 0}


def broker_positions(sim_path: Path) -> dict[str, Decimal]:
    rows = broker(sim_path, "SELECT symbol, qty FROM positions")
    return {s: Decimal(q) for s, q in rows if Decimal(q) != 0}


def assert_journal_and_broker_agree(state_dir: Path, sim_path: Path) -> None:
    """No order at the broker without its intent in the journal; no client_order_id sent twice;
    no signal with two orders; the broker's positions are what the journal's orders filled."""
    at_broker = [c for (c,) in broker(sim_path, "SELECT client_order_id FROM orders")]
    intents = {c for (c,) in journal(state_dir, "SELECT client_order_id FROM orders")}
    without_intent = [c for c in at_broker if c not in intents]
    assert without_intent == [], f"orders at the broker with no journaled intent: {without_intent}"
    submits = broker(sim_path, "SELECT client_order_id, count FROM submit_counts WHERE count > 1")
    assert submits == [], f"client_order_ids submitted more than once: {submits}"
    per_signal = Counter(
        s for (s,) in journal(state_dir, "SELECT signal_id FROM orders WHERE signal_id NOT NULL")
    )
    doubled = {s: n for s, n in per_signal.items() if n > 1}
    assert doubled == {}, f"signals with more than one order: {doubled}"
    # The signal row names the order of its decision, and it is that signal's order.
    named = journal(
        state_dir,
        "SELECT s.signal_id, o.signal_id FROM signals s JOIN orders o"
        " ON o.client_order_id = s.client_order_id WHERE s.signal_id <> o.signal_id",
    )
    assert named == [], f"signals naming another signal's order: {named}"
    at_broker_qty, journaled = broker_positions(sim_path), journaled_positions(state_dir)
    assert at_broker_qty == journaled, f"broker {at_broker_qty} != journaled orders {journaled}"


def assert_broker_kept_what_it_acknowledged(state_dir: Path, sim_path: Path) -> None:
    """The simulated broker plays a broker that kept running: every order the journal holds a
    broker id for (the broker acknowledged it) is in the broker's state file with that id, and
    the broker's own books add up (positions and cash are what its orders filled)."""
    acknowledged = journal(
        state_dir,
        "SELECT client_order_id, broker_order_id FROM orders WHERE broker_order_id IS NOT NULL",
    )
    held = dict(broker(sim_path, "SELECT client_order_id, broker_order_id FROM orders"))
    lost = [(c, b) for c, b in acknowledged if held.get(c) != b]
    assert lost == [], f"orders the broker acknowledged and then lost: {lost[:20]}"
    rows = broker(sim_path, "SELECT symbol, side, filled_quantity, avg_fill_price FROM orders")
    assert broker_positions(sim_path) == _signed([(s, d, q) for s, d, q, _ in rows])
    spent = sum(
        (Decimal(q) * Decimal(p) * (1 if d == "buy" else -1) for _, d, q, p in rows if p),
        Decimal(0),
    )
    ((cash, *_),) = broker(sim_path, "SELECT cash FROM account")
    assert Decimal(cash) == INITIAL_CASH - spent, (cash, INITIAL_CASH - spent)


def assert_answers_are_journaled(state_dir: Path, answers: dict[str, Answer]) -> None:
    """Every 200 a client was given is the decision the journal holds, byte for byte."""
    stored = dict(journal(state_dir, "SELECT signal_id, decision FROM signals"))
    for signal_id, answer in answers.items():
        if answer.status == 200:
            assert stored.get(signal_id) == answer.text, (signal_id, answer.text)


def assert_replays_identical(url: str, flood: Flood) -> None:
    """Every signal sent again: one that was answered gets its first answer, byte for byte,
    marked as a replay; one lost in flight gets a decision (and, checked after, no second
    order)."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30.0) as client:
        for signal_id, signal in flood.sent.items():
            again = client.post("/v1/signals", json=signal)
            first = flood.answers.get(signal_id)
            if first is not None and first.status == 200:
                assert again.status_code == 200, (signal_id, again.text)
                assert again.text == first.text, (signal_id, first.text, again.text)
                assert again.headers.get("Idempotent-Replayed") == "true", signal_id
            else:
                assert again.status_code == 200, (signal_id, again.text)
                json.loads(again.text)


def settled(url: str) -> bool:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10.0) as client:
        status = client.get("/v1/status").json()
    return not status["orders"].get("unknown")


@dataclass
class Frame:
    id: int
    type: str
    data: Any


class RawStream:
    """Follows GET /v1/events from ``after`` in a thread, reconnecting with Last-Event-ID after
    a drop or a restart, keeping every frame exactly as it came (doubles and gaps included)."""

    def __init__(self, url: str, after: int = 0):
        self.url = url
        self.position = after
        self.frames: list[Frame] = []
        self.connects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RawStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        timeout = httpx.Timeout(5.0, read=30.0)
        while not self._stop.is_set():
            headers = {**HEADERS, "Accept": "text/event-stream"}
            headers["Last-Event-ID"] = str(self.position)
            try:
                with (
                    httpx.Client(base_url=self.url, timeout=timeout) as client,
                    client.stream("GET", "/v1/events", headers=headers) as response,
                ):
                    if response.status_code != 200:
                        time.sleep(0.1)
                        continue
                    self.connects += 1
                    fields: dict[str, str] = {}
                    for line in response.iter_lines():
                        if self._stop.is_set():
                            return
                        if line == "":
                            if "id" in fields and "data" in fields:
                                frame = Frame(
                                    int(fields["id"]),
                                    fields.get("event", ""),
                                    json.loads(fields["data"]),
                                )
                                with self._lock:
                                    self.frames.append(frame)
                                self.position = frame.id
                            fields = {}
                        elif not line.startswith(":"):
                            name, _, value = line.partition(":")
                            fields[name] = value.removeprefix(" ")
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def seen(self) -> list[Frame]:
        with self._lock:
            return list(self.frames)

    def wait_for(self, last_seq: int, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: bool(self.seen()) and self.seen()[-1].id >= last_seq,
            f"the stream to reach seq {last_seq} (at {self.position})",
            timeout_s,
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=40)


def assert_stream_matches_journal(frames: list[Frame], state_dir: Path) -> None:
    """The journal's stream table is seq 1..N; the stream gave each of them exactly once, in
    order, with the journal's type and payload (an event sent before its commit and lost by a
    crash would show as an id whose payload is another event's)."""
    table = journal(state_dir, "SELECT seq, type, payload FROM stream ORDER BY seq")
    seqs = [seq for seq, _, _ in table]
    assert seqs == list(range(1, len(seqs) + 1)), "the journal's stream has gaps"
    ids = [f.id for f in frames]
    assert ids, "the stream sent nothing"
    # Events journaled after the frames were taken are not the stream's to have sent yet.
    table = [row for row in table if row[0] <= max(ids)]
    seqs = [seq for seq, _, _ in table]
    doubles = [i for i, n in Counter(ids).items() if n > 1]
    assert doubles == [], f"events sent twice: {doubles[:20]}"
    assert ids == sorted(ids), "event ids not strictly increasing"
    missing = sorted(set(seqs) - set(ids))
    assert missing == [], f"events the stream never sent: {missing[:20]} ({len(missing)})"
    invented = sorted(set(ids) - set(seqs))
    assert invented == [], f"events the journal does not hold: {invented[:20]}"
    for frame, (seq, kind, payload) in zip(frames, table, strict=True):
        assert (frame.id, frame.type) == (seq, kind)
        assert frame.data == json.loads(payload), seq


def assert_decisions_streamed(frames: list[Frame], answers: dict[str, Answer]) -> None:
    """Every decision a client was answered is a decision event of the stream, exactly once,
    with the answer's content."""
    streamed: dict[str, list[Any]] = {}
    for frame in frames:
        if frame.type == "decision":
            streamed.setdefault(frame.data["signal_id"], []).append(frame.data)
    for signal_id, answer in answers.items():
        if answer.status == 200:
            got = streamed.get(signal_id, [])
            assert got == [json.loads(answer.text)], (signal_id, len(got))
