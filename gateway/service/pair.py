"""What a member of an active/standby pair checks at start, beyond any gateway's start: the pair
shares its journal (in PostgreSQL), not the files of each member's state dir."""

from __future__ import annotations

from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.store.journal import Journal, JournalError
from gateway.store.statedir import StateDir


def check_pair_journal(state_dir: StateDir, journal: Journal, *, new_journal: bool) -> None:
    """A gateway that kept its journal in the state dir and now joins a pair would start on an
    empty PostgreSQL journal, its intents and history left behind: refused, as any lost journal
    is, unless --new-journal says so."""
    sqlite_file = state_dir.journal
    if new_journal or not sqlite_file.exists() or sqlite_file.stat().st_size == 0:
        return
    if journal.is_empty():
        journal.close()
        raise JournalError(
            f"{sqlite_file} holds this gateway's journal, but the pair's journal in PostgreSQL "
            "is empty (firm.account makes this gateway one of an active/standby pair): remove "
            "firm.account, or move the file aside and start with --new-journal"
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
