"""How a failed journal write is undone, what it reports, and what it keeps: a statement that
fails under a savepoint costs only itself, one that cannot be undone costs its group, a bug in
a statement is not an outage, and the failure names the error the disk gave."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brokers.base import BrokerOrder, Fill, OrderRequest
from gateway.store.journal import JournalUnavailable, WriteFailure
from tests.journal_backends import Backend, outage
from tests.journal_faults import CommitFails

FULL = "database or disk is full"
FAILED_FULL = f"^journal write failed: OperationalError: {FULL}$"
IO = "disk I/O error"


class Faults:
    """Stands in for the journal's connection: a statement starting with a key of ``failing``
    fails with that key's message (as SQLite does: the statement is undone, the transaction
    stays) for as long as it is in ``failing``; everything else goes to the real connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.failing: dict[str, str] = {}
        self.once = False  # each failure fires once, then the statement works again

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        for prefix, message in self.failing.items():
            if sql.startswith(prefix):
                if self.once:
                    del self.failing[prefix]
                raise outage(self.db, message)
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


class Setup:
    def __init__(self, tmp_path: Path, backend: Backend) -> None:
        self.backend = backend
        self.path = tmp_path / "j.sqlite3"
        self.failures: list[WriteFailure] = []
        self.recoveries: list[bool] = []
        self.commits: list[float] = []
        self.journal = backend.open(
            self.path,
            on_write=self.commits.append,
            on_failure=self.failures.append,
            on_recovered=lambda: self.recoveries.append(True),
        )
        self.faults = Faults(self.journal._db)
        self.journal._db = self.faults  # type: ignore[assignment]
        self.journal._tx.db = self.faults  # type: ignore[assignment]

    def intent(self, n: int, *, defer: bool = True) -> int:
        return self.journal.record_intent(
            signal_id=f"s-{n}",
            body_hash="h",
            body="{}",
            strategy="momentum",
            symbol="AAPL",
            order=OrderRequest(client_order_id=f"gw-{n}", symbol="AAPL", side="buy", quantity=1),
            valued_at="200",
            defer=defer,
        )

    def on_disk(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        """What another connection reads: only what was committed."""
        return self.backend.rows(self.path, sql, *args)

    def status_on_disk(self, coid: str) -> str | None:
        rows = self.on_disk("SELECT status FROM orders WHERE client_order_id=?", coid)
        return None if not rows else str(rows[0][0])

    def signal_on_disk(self, signal_id: str) -> bool:
        return bool(self.on_disk("SELECT 1 FROM signals WHERE signal_id=?", signal_id))


@pytest.fixture
def setup(tmp_path: Path, backend: Backend) -> Setup:
    return Setup(tmp_path, backend)


def _filled(coid: str) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=coid,
        broker_order_id=f"b-{coid}",
        symbol="AAPL",
        side="buy",
        quantity=1,
        filled_quantity=1,
        status="filled",
        avg_fill_price="200",
    )


def test_a_statement_failing_under_a_savepoint_is_undone_alone_and_its_group_lands(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)  # opens a group
    setup.faults.failing = {"INSERT INTO order_events": FULL}
    # Two statements joining the open group: the first (the status) is undone with the second.
    assert journal.record_order_status("gw-0", "rejected", "never sent") is False
    assert journal.backlog == 1  # kept
    journal.commit_now(ticket)  # the intent in the same group is not lost
    assert setup.signal_on_disk("s-1")
    assert setup.status_on_disk("gw-0") == "pending_submit"
    assert [f.error for f in setup.failures] == [f"OperationalError: {FULL}"]
    setup.faults.failing = {}
    assert journal.probe()
    assert setup.status_on_disk("gw-0") == "rejected"
    journal.close()


def test_a_savepoint_that_cannot_be_rolled_back_loses_its_group_naming_the_error(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)
    setup.faults.failing = {"INSERT INTO order_events": FULL, "ROLLBACK TO w": IO}
    assert journal.record_order_status("gw-0", "rejected", "never sent") is False
    setup.faults.failing = {}
    with pytest.raises(JournalUnavailable):
        journal.commit_now(ticket)  # its order must never be sent
    assert not setup.signal_on_disk("s-1")
    assert [f.error for f in setup.failures] == [f"OperationalError: {IO}"]
    journal.close()


def test_an_intent_that_cannot_be_undone_in_its_group_reports_the_error_that_stopped_it(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    first = setup.intent(1)  # opens a group
    setup.faults.failing = {"INSERT INTO orders": FULL, "DELETE FROM signals": IO}
    with pytest.raises(JournalUnavailable, match=f"^journal write failed: OperationalError: {IO}$"):
        setup.intent(2)  # joins it; neither its order nor the undo of its signal row lands
    setup.faults.failing = {}
    with pytest.raises(JournalUnavailable, match=IO):
        journal.commit_now(first)
    assert [f.error for f in setup.failures] == [f"OperationalError: {IO}"]
    journal.close()


def test_a_write_that_opened_its_group_and_failed_on_a_full_disk_reports_the_disk(
    setup: Setup,
) -> None:
    setup.faults.failing = {"INSERT INTO signals": FULL}
    with pytest.raises(JournalUnavailable, match=FAILED_FULL):
        setup.intent(1, defer=False)
    (failure,) = setup.failures
    assert failure.error == f"OperationalError: {FULL}"
    assert failure.since.utcoffset() == UTC.utcoffset(None)
    assert setup.journal.failure == failure
    assert not setup.journal._db.in_transaction
    setup.journal.close()


def test_a_statement_failing_joined_to_the_open_group_names_the_disk(setup: Setup) -> None:
    journal = setup.journal
    ticket = setup.intent(1)
    setup.faults.failing = {"INSERT INTO signals": FULL}
    with pytest.raises(JournalUnavailable, match=FAILED_FULL):
        setup.intent(2)
    setup.faults.failing = {}
    journal.commit_now(ticket)  # a single statement undoes itself: the group still lands
    assert setup.signal_on_disk("s-1") and not setup.signal_on_disk("s-2")
    journal.close()


def test_a_statement_bug_in_a_write_that_opened_its_group_is_not_a_journal_failure(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(1))
    with pytest.raises(setup.backend.integrity_error):
        setup.intent(1, defer=False)  # the same signal_id twice: a bug, not a full disk
    assert setup.failures == [] and journal.failure is None
    journal.commit_now(setup.intent(2))  # the journal writes on
    assert setup.signal_on_disk("s-2")
    journal.close()


def test_a_rollback_that_fails_after_a_failed_commit_still_answers_journal_unavailable(
    setup: Setup,
) -> None:
    ticket = setup.intent(1)
    setup.faults.failing = {"COMMIT": IO, "ROLLBACK": IO}
    with pytest.raises(JournalUnavailable):
        setup.journal.commit_now(ticket)
    setup.faults.failing = {}
    setup.journal._db.execute("ROLLBACK")
    assert not setup.signal_on_disk("s-1")
    setup.journal.close()


def test_the_failure_and_the_recovery_are_logged_with_the_error(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store.journal")
    setup.faults.failing = {"INSERT INTO events": FULL}
    assert setup.journal.record_event("note", {"n": 1}) is False
    setup.faults.failing = {}
    assert setup.journal.probe()
    assert setup.recoveries == [True]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.CRITICAL, f"journal cannot write: OperationalError: {FULL}"),
        (logging.WARNING, f"journal writes again (after: OperationalError: {FULL})"),
    ]
    setup.journal.close()


def test_probing_a_healthy_journal_says_writable_and_announces_no_recovery(
    setup: Setup,
) -> None:
    assert setup.journal.probe()
    assert setup.recoveries == [] and setup.failures == []
    setup.journal.close()


def test_a_flush_with_nothing_kept_leaves_the_open_group_to_its_commit(setup: Setup) -> None:
    first = setup.intent(1)
    setup.journal._tx.flush_backlog()
    assert setup.intent(2) == first  # the same group: one commit for both
    assert not setup.signal_on_disk("s-1")
    setup.journal.commit_now(first)
    assert setup.signal_on_disk("s-1") and setup.signal_on_disk("s-2")
    setup.journal.close()


def test_kept_writes_replayed_before_one_that_still_fails_are_committed(setup: Setup) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(1))
    setup.faults.failing = {"UPDATE orders": FULL, "INSERT INTO events": FULL}
    assert journal.record_order_updates([(_filled("gw-1"), None, None)]) is False
    assert journal.record_event("note", {"n": 1}) is False
    assert journal.backlog == 2
    setup.faults.failing = {"INSERT INTO events": FULL}
    journal._tx.flush_backlog()  # the fill is written, the note still fails and stays first
    assert journal.backlog == 1
    assert setup.status_on_disk("gw-1") == "filled"  # committed, not left in an open group
    assert not journal._db.in_transaction
    setup.faults.failing = {}
    assert journal.probe()
    assert [e["n"] for e in journal.events("note")] == [1]
    journal.close()


def test_a_commit_failing_while_kept_writes_are_replayed_never_raises_to_the_writer(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(1))
    journal.commit_now(setup.intent(2))
    setup.faults.failing = {"UPDATE orders": FULL}
    assert journal.record_order_updates([(_filled("gw-1"), None, None)]) is False
    setup.faults.failing = {}
    commits = CommitFails(setup.faults)  # type: ignore[arg-type]
    journal._db = commits  # type: ignore[assignment]
    journal._tx.db = commits  # type: ignore[assignment]
    # Both fills are replayed in one group, whose commit fails: kept again, nothing raised.
    assert journal.record_order_updates([(_filled("gw-2"), None, None)]) is False
    assert journal.backlog == 2
    assert setup.status_on_disk("gw-1") == "pending_submit"
    assert journal.probe()
    assert setup.status_on_disk("gw-1") == setup.status_on_disk("gw-2") == "filled"
    journal.close()


def test_a_group_that_cannot_begin_reports_the_disk(setup: Setup) -> None:
    setup.faults.failing = {"BEGIN": FULL}
    with pytest.raises(JournalUnavailable, match=FAILED_FULL):
        setup.intent(1, defer=False)
    assert [f.error for f in setup.failures] == [f"OperationalError: {FULL}"]
    setup.journal.close()


def test_a_savepoint_that_cannot_be_taken_reports_the_disk_and_keeps_the_group(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)
    setup.faults.failing = {"SAVEPOINT": FULL}
    assert journal.record_order_status("gw-0", "rejected", "never sent") is False
    assert [f.error for f in setup.failures] == [f"OperationalError: {FULL}"]
    setup.faults.failing = {}
    journal.commit_now(ticket)
    assert setup.signal_on_disk("s-1")
    journal.close()


def test_a_savepoint_that_cannot_be_released_is_undone_and_written_once_later(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)
    setup.faults.once = True
    setup.faults.failing = {"RELEASE w": FULL}
    assert journal.record_order_status("gw-0", "rejected", "never sent") is False
    journal.commit_now(ticket)
    assert setup.signal_on_disk("s-1")
    assert setup.status_on_disk("gw-0") == "pending_submit"  # undone, not half-written
    assert journal.probe()
    assert setup.on_disk(
        "SELECT status, detail FROM order_events WHERE client_order_id='gw-0'"
    ) == [("rejected", "never sent")]
    journal.close()


def test_each_commit_reports_how_long_its_group_was_open(setup: Setup) -> None:
    import time

    start = time.perf_counter()
    setup.intent(1, defer=False)
    elapsed = time.perf_counter() - start
    (duration,) = setup.commits
    assert 0 <= duration <= elapsed
    setup.journal.close()


def test_a_ticket_lost_before_the_journal_recovered_stays_lost(setup: Setup) -> None:
    journal = setup.journal
    ticket = setup.intent(1)
    setup.faults.failing = {"COMMIT": IO}
    with pytest.raises(JournalUnavailable):
        journal.commit_now()
    setup.faults.failing = {}
    assert journal.probe() and journal.failure is None
    with pytest.raises(JournalUnavailable, match=r"^journal write failed: lost$"):
        journal.commit_now(ticket)
    journal.close()


def test_a_decision_whose_order_state_fails_in_an_open_group_is_undone_whole(
    setup: Setup,
) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)  # opens a group
    setup.faults.failing = {"INSERT INTO order_events": FULL}
    with pytest.raises(JournalUnavailable):
        journal.record_decision("s-0", '{"decision":"accepted"}', "accepted", _filled("gw-0"))
    setup.faults.failing = {}
    journal.commit_now(ticket)
    assert setup.signal_on_disk("s-1")
    # Neither the decision nor the order's new state landed: the caller was told it failed.
    assert setup.on_disk("SELECT decision FROM signals WHERE signal_id='s-0'") == [(None,)]
    assert setup.status_on_disk("gw-0") == "pending_submit"
    journal.close()


def test_an_intent_that_opened_its_group_reports_the_statement_that_failed(
    setup: Setup,
) -> None:
    # Its group is rolled back whole: no row is deleted by hand, so no second error is met.
    setup.faults.failing = {"INSERT INTO orders": FULL, "DELETE FROM signals": IO}
    with pytest.raises(JournalUnavailable, match=FAILED_FULL):
        setup.intent(1, defer=False)
    assert [f.error for f in setup.failures] == [f"OperationalError: {FULL}"]
    setup.faults.failing = {}
    assert not setup.signal_on_disk("s-1")
    setup.journal.close()


def test_closing_with_writes_lost_or_a_failed_checkpoint_is_logged_and_still_closes(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store.journal")
    setup.intent(1)  # left open
    setup.faults.failing = {"COMMIT": IO, "PRAGMA wal_checkpoint": IO}
    setup.journal.close()
    with pytest.raises(setup.backend.closed_error):
        setup.faults.db.execute("SELECT 1")  # closed
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (
        logging.ERROR,
        f"journal closed with writes lost: journal write failed: OperationalError: {IO}",
    ) in messages
    if not setup.backend.postgres:  # PostgreSQL has no checkpoint to make at close
        assert (logging.WARNING, f"final journal checkpoint failed: {IO}") in messages
    assert not setup.signal_on_disk("s-1")


def _fill(coid: str, fill_id: str) -> Fill:
    return Fill(
        client_order_id=coid,
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        quantity=1,
        price="200",
        ts=datetime(2026, 1, 2, tzinfo=UTC),
        fill_id=fill_id,
    )


def test_a_lone_fill_whose_event_fails_takes_its_row_back_and_its_group_lands(
    setup: Setup,
) -> None:
    # A lone fill joins the open group without a savepoint: its row must go with its event.
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)  # the open group, which the failed fill must not cost
    setup.faults.failing = {"INSERT INTO stream": FULL}
    update = (_filled("gw-0"), _fill("gw-0", "f-1"), None)
    journal._orders._states["gw-0"] = journal._orders.new_state(update[0], None)  # type: ignore[assignment]
    assert journal.record_order_updates([update]) is False
    setup.faults.failing = {}
    journal.commit_now(ticket)
    assert setup.signal_on_disk("s-1")
    assert setup.on_disk("SELECT fill_id FROM fills") == []
    assert journal.probe()  # the kept fill is written once, with its event
    assert setup.on_disk("SELECT fill_id FROM fills") == [("f-1",)]
    assert len(setup.on_disk("SELECT seq FROM stream WHERE type='fill'")) == 1
    journal.close()


def test_a_lone_fill_that_cannot_take_its_row_back_loses_its_group(setup: Setup) -> None:
    journal = setup.journal
    journal.commit_now(setup.intent(0))
    ticket = setup.intent(1)
    setup.faults.failing = {"INSERT INTO stream": FULL, "DELETE FROM fills": FULL}
    update = (_filled("gw-0"), _fill("gw-0", "f-1"), None)
    journal._orders._states["gw-0"] = journal._orders.new_state(update[0], None)  # type: ignore[assignment]
    assert journal.record_order_updates([update]) is False
    setup.faults.failing = {}
    with pytest.raises(JournalUnavailable):
        journal.commit_now(ticket)  # a fill without its event never reaches the disk
    assert setup.on_disk("SELECT fill_id FROM fills") == []
    assert not setup.signal_on_disk("s-1")
    assert journal.probe()
    assert setup.on_disk("SELECT fill_id FROM fills") == [("f-1",)]
    journal.close()
