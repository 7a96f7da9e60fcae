"""What a start settles before trading, from what the last run left: the halt state and the
journal vouch for each other, and a kill switch the process died in the middle of is finished."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from gateway.safety.halt import HaltManager
from gateway.safety.halt_state import HaltTrigger
from gateway.service.controls import Controls
from gateway.service.pair import carry_halt_over
from gateway.store.journal import Journal

log = logging.getLogger("gateway.service")


def vouch_for_halt_state(
    halt: HaltManager,
    journal: Journal,
    *,
    paired: bool,
    halt_file_was_missing: bool,
    halt_file: Path,
) -> None:
    """A halt state that is gone while the journal records a halt with no resume: start
    HALTED. Gone with no halt open (or on a first start): written now, so that from here on
    the two files vouch for each other."""
    halt.restore()
    if paired:
        carry_halt_over(journal, halt)
    if not halt_file_was_missing:
        return
    open_halt = journal.open_halt()
    if open_halt is not None:
        reason = (
            f"halt state {halt_file} is missing while the journal records a "
            f"halt with no resume ({open_halt.get('trigger')}: {open_halt.get('reason')}, "
            f"since {open_halt.get('at')})"
        )
        halt.halt(reason[:500], HaltTrigger.STATE_UNREADABLE, by="restore")
    else:
        if not journal.is_empty():
            log.warning("halt state was missing; the journal records no halt: written anew")
        halt.write_state()


async def complete_interrupted_kill(
    halt: HaltManager, journal: Journal, controls: Controls
) -> None:
    """A kill switch that fired (the halt says so) but whose cancelling never finished (no
    report in the journal after it: the process died on the way) is completed now: what the
    operator asked for was every order cancelled."""
    current = halt.current
    if current is None or not current.kill_switch:
        return
    reports = journal.events("kill_switch", limit=1)
    if reports and datetime.fromisoformat(reports[0]["at"]) >= current.since:
        return
    log.critical("a kill switch was interrupted by a restart: completing it now")
    await controls.kill("completing a kill switch interrupted by a restart", by="restore")
