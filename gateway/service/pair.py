"""What a member of an active/standby pair checks at start, beyond any gateway's start: the pair
shares its journal (in PostgreSQL), not the files of each member's state dir."""

from __future__ import annotations

from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal, JournalError
from gateway.store.statedir import StateDir


def check_pair_journal(state_dir: StateDir, journal: Journal, *, new_journal: bool) -> None:
    """An empty pair journal beside state that says there was one is lost state, not a fresh
    start (as for SQLite): a SQLite journal left behind by joining a pair, or this member's halt
    state from a start as the active. Refused unless --new-journal says so."""
    if new_journal or not journal.is_empty():
        return
    sqlite_file = state_dir.journal
    if sqlite_file.exists() and sqlite_file.stat().st_size > 0:
        journal.close()
        raise JournalError(
            f"{sqlite_file} holds this gateway's journal, but the pair's journal in PostgreSQL "
            "is empty (firm.account makes this gateway one of an active/standby pair): remove "
            "firm.account, or move the file aside and start with --new-journal"
        )
    if state_dir.halt_file.exists():  # written by a start as the active: it journaled there
        journal.close()
        raise JournalError(
            "the pair's journal in PostgreSQL is empty, yet this gateway traded as the pair's "
            f"active before ({state_dir.halt_file} exists): a wrong DSN or a lost database is "
            "never a fresh start; start with --new-journal if a new journal is meant"
        )


def carry_halt_over(journal: Journal, halt: HaltManager) -> None:
    """A halt the other member left in force (no resume after it in the shared journal) holds
    here too: the halt state files are each member's own."""
    recorded = journal.open_halt()
    if recorded is None or halt.current is not None:
        return
    try:
        trigger = HaltTrigger(str(recorded.get("trigger")))
    except ValueError:
        trigger = HaltTrigger.STATE_UNREADABLE
    reason = f"taken over halted: {recorded.get('reason')} (since {recorded.get('at')})"
    halt.halt(reason[:500], trigger, by="takeover")
