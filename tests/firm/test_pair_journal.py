"""The pair's journal and its lock, in one process on the local PostgreSQL: the lock is held by
the session the journal writes with, so a terminated session can neither commit an intent nor
come back by itself, and the other member's lock then succeeds."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from brokers.base import OrderRequest
from gateway.config.firm import FirmSettings
from gateway.firm.errors import GatewayIdInUse
from gateway.firm.pair import PairLock
from gateway.store.journal import Journal, JournalUnavailable, WriteFailure
from gateway.store.pg import SCHEMA_VERSION, schema_name
from gateway.store.schema import JournalError


def settings(gateway_id: str, account: str = "acct") -> FirmSettings:
    return FirmSettings(gateway_id=gateway_id, account=account, takeover_s=2)


def intent(journal: Journal, n: int) -> int:
    return journal.record_intent(
        signal_id=f"s-{n}",
        body_hash="h",
        body="{}",
        strategy="momentum",
        symbol="AAPL",
        order=OrderRequest(client_order_id=f"gw-{n}", symbol="AAPL", side="buy", quantity=1),
        valued_at="200",
    )


def terminate(dsn: str, gateway_id: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"gateway:{gateway_id}",),
        ).fetchall()
    assert rows == [(True,)]


def test_one_member_holds_the_lock_and_the_other_waits(firm_dsn: str) -> None:
    first, second = PairLock(settings("a"), firm_dsn), PairLock(settings("b"), firm_dsn)
    assert first.try_lead()
    assert not second.try_lead()
    assert not second.try_lead()  # tried again: still the standby
    other = PairLock(settings("c", account="another"), firm_dsn)
    assert other.try_lead()  # another account's pair is not in the way
    for lock in (first, second, other):
        lock.close()
    third = PairLock(settings("b"), firm_dsn)
    assert third.try_lead()  # the holder's session ended: the lock is free
    third.close()


def test_a_terminated_session_cannot_commit_an_intent_nor_reconnect_and_the_standby_leads(
    tmp_path: Path, firm_dsn: str
) -> None:
    active, standby = PairLock(settings("a"), firm_dsn), PairLock(settings("b"), firm_dsn)
    assert active.try_lead() and not standby.try_lead()
    failures: list[WriteFailure] = []
    journal = Journal(tmp_path / "unused", db=active.journal(), on_failure=failures.append)
    journal.commit_now(intent(journal, 1))
    terminate(firm_dsn, "a")
    with pytest.raises(JournalUnavailable):
        journal.commit_now(intent(journal, 2))
    assert len(failures) == 1  # the journal's failure path: the gateway halts journal_failure
    assert not journal.probe()  # it never reconnects by itself
    assert standby.try_lead()
    taken_over = Journal(tmp_path / "unused", db=standby.journal())
    assert [s.signal_id for s in taken_over.signals()] == ["s-1"]  # s-2 never committed
    assert [o.client_order_id for o in taken_over.orders()] == ["gw-1"]
    assert not journal.probe()  # still not: the lock is held elsewhere
    journal.close()
    taken_over.close()


def test_a_twin_gateway_id_refuses_even_as_a_standby(firm_dsn: str) -> None:
    first = PairLock(settings("a"), firm_dsn)
    assert first.try_lead()
    with pytest.raises(GatewayIdInUse, match="gateway_id 'a' is in use"):
        PairLock(settings("a"), firm_dsn).try_lead()
    first.close()


def test_a_journal_schema_newer_than_the_gateway_is_refused_untouched(firm_dsn: str) -> None:
    lock = PairLock(settings("a"), firm_dsn)
    assert lock.try_lead()
    Journal(Path("unused"), db=lock.journal()).close()
    with psycopg.connect(firm_dsn, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema_name("acct")}".journal_schema VALUES (%s)',  # type: ignore[arg-type]
            (SCHEMA_VERSION + 1,),
        )
    again = PairLock(settings("a"), firm_dsn)
    assert again.try_lead()
    with pytest.raises(JournalError, match="newer than this gateway"):
        again.journal()
    again.close()
