"""Signals from 16 concurrent clients decided while one journal commit carrying intents fails (as a full
disk or an I/O error fails a COMMIT: the transaction is rolled back).

Guarantees pinned (Persistence: the intent is written before the broker sees it; Durability
contract details (v2): a journal write that fails answers 503 journal_unavailable, halts with
journal_failure, and nothing is sent to the broker without its intent committed):
- a signal whose intent did not reach the disk never reaches the broker and is answered 503
  journal_unavailable: when several signals share one commit (group commit), a failing commit
  fails every member of its group, not only the one that ran the COMMIT;
- every answer of 200 is the decision the journal holds, byte for byte;
- every order at the broker has its intent in the journal, none was sent twice, and sending
  every signal again answers the first decision (a replay) or decides it anew, never a second
  order."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from brokers.simulated import Faults, SimulatedBroker
from gateway.config import GatewayConfig
from gateway.service import GatewayService
from tests.conftest import api_client, signal
from tests.journal_backends import outage

SIGNALS = "INSERT INTO signals"
PER_CLIENT = 5


class NthCommitFails:
    """Stands in for the journal's connection: the ``nth`` COMMIT (1-based) of a transaction
    holding a statement that starts with ``carrying``, and the ``times - 1`` such commits after
    it, fail with "disk I/O error" after a ROLLBACK. The signal ids the failed transactions
    wrote are kept in ``lost``."""

    def __init__(self, db: sqlite3.Connection, *, carrying: str, nth: int, times: int = 1) -> None:
        self._db = db
        self._carrying = carrying
        self._nth = nth
        self._times = times
        self._seen = 0
        self._statements: list[tuple[str, Any]] = []
        self.lost: list[set[str]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("BEGIN"):
            self._statements = []
        elif sql == "COMMIT":
            statements, self._statements = self._statements, []
            if any(s.startswith(self._carrying) for s, _ in statements):
                self._seen += 1
                if self._nth <= self._seen < self._nth + self._times:
                    self.lost.append(_signal_ids(statements))
                    self._db.execute("ROLLBACK")
                    raise outage(self._db, "disk I/O error")
        else:
            self._statements.append((sql, args[0] if args else ()))
        return self._db.execute(sql, *args)

    def disarm(self) -> None:
        self._times = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def _signal_ids(statements: list[tuple[str, Any]]) -> set[str]:
    out = set()
    for sql, params in statements:
        if sql.startswith(SIGNALS) and params:
            out.add(str(params[0]))
    return out


def _install(journal: Any, **kwargs: Any) -> NthCommitFails:
    failing = NthCommitFails(journal._db, **kwargs)
    journal._db = failing
    journal._tx.db = failing
    return failing


def _body(n: int) -> dict[str, Any]:
    body = signal(f"batch-{n}", quantity=1 + n % 3, side="buy" if n % 2 else "sell")
    body["strategy"] = f"s{n % 4}"
    if n % 4 == 3:
        body.update(order_type="limit", limit_price=190 if n % 2 else 210)
    return body


@pytest.mark.parametrize(
    ("nth", "times", "latency_ms"), [(1, 1, 0), (3, 1, 0), (2, 2, 0), (3, 1, 20), (1, 3, 5)]
)
async def test_a_failed_group_commit_fails_every_member_and_sends_none_of_them(
    make_config: Callable[..., GatewayConfig],
    make_service: Callable[..., Any],
    nth: int,
    times: int,
    latency_ms: int,
) -> None:
    config = make_config(
        risk={
            "emergency": {"resume_cooldown_s": 0},
            "pre_trade": {"max_orders_per_second": 1_000_000, "allow_short": True},
        }
    )
    service: GatewayService = await make_service(config)
    broker = service.broker
    assert isinstance(broker, SimulatedBroker)
    if latency_ms:
        broker.set_faults(Faults(latency_ms=latency_ms))
    failing = _install(service.journal, carrying=SIGNALS, nth=nth, times=times)
    # 16 concurrent clients, each sending its 5 signals one after another: at least 5 commits
    # carry signals, however many signals each groups.
    bodies = [_body(n) for n in range(16 * PER_CLIENT)]
    async with api_client(service) as client:

        async def one_client(k: int) -> list[httpx.Response]:
            mine = bodies[k * PER_CLIENT : (k + 1) * PER_CLIENT]
            return [await client.post("/v1/signals", json=b) for b in mine]

        per_client = await asyncio.wait_for(asyncio.gather(*map(one_client, range(16))), 60)
    answers = [a for answers_of_one in per_client for a in answers_of_one]
    by_id = {b["signal_id"]: a for b, a in zip(bodies, answers, strict=True)}
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 503:
            assert answer.json()["code"] == "journal_unavailable", answer.text
    assert failing.lost, "no commit carrying an intent failed: the fault never fired"
    lost = set().union(*failing.lost)
    assert lost, "the failed commit carried no signal"

    journal = service.journal
    coid_of = {o.signal_id: o.client_order_id for o in journal.orders()}
    at_broker = set(broker.submit_counts)
    # Every member of a failed group: answered 503, not journaled, never at the broker.
    for signal_id in sorted(lost):
        answer = by_id[signal_id]
        assert answer.status_code == 503, (signal_id, "in a failed commit", answer.text)
        assert journal.signal(signal_id) is None, signal_id
        assert signal_id not in coid_of, signal_id
    # A signal the journal does not hold was refused, whatever grouped it.
    for signal_id, answer in by_id.items():
        if journal.signal(signal_id) is None:
            assert answer.status_code == 503, (signal_id, "not journaled", answer.text)
    # Every 200 is the journal's decision, byte for byte.
    for signal_id, answer in by_id.items():
        if answer.status_code == 200:
            stored = journal.signal(signal_id)
            assert stored is not None and stored.decision == answer.text, signal_id
    # No order at the broker without its intent; none sent twice.
    intents = set(coid_of.values())
    assert at_broker <= intents, at_broker - intents
    assert all(count == 1 for count in broker.submit_counts.values()), broker.submit_counts
    await asyncio.sleep(0)  # the halt comes on the loop's next turn
    assert service.halt.current is not None
    assert service.halt.current.trigger.value == "journal_failure"

    # Writes work again: every signal sent again is a replay or a new decision, no new order.
    failing.disarm()
    assert journal.probe()
    async with api_client(service) as client:
        again = await asyncio.wait_for(
            asyncio.gather(*(client.post("/v1/signals", json=b) for b in bodies)), 60
        )
    for body, first, second in zip(bodies, answers, again, strict=True):
        assert second.status_code == 200, (body["signal_id"], second.text)
        if first.status_code == 200:
            assert second.text == first.text, body["signal_id"]
            assert second.headers.get("Idempotent-Replayed") == "true"
    assert all(count == 1 for count in broker.submit_counts.values()), broker.submit_counts
    assert set(broker.submit_counts) <= {o.client_order_id for o in journal.orders()}
