"""The active's session watch: a session gone while trading deposes the gateway (engine stopped,
firm row stepped down); a session closed by a clean stop is no alarm."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from gateway.http.pair import watch_session


class Engine:
    def __init__(self, shutting_down: bool) -> None:
        self.shutting_down = shutting_down
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


class Firm:
    def __init__(self) -> None:
        self.stepped_down = False

    async def step_down(self) -> None:
        self.stepped_down = True


def parts(*, shutting_down: bool) -> tuple[Any, Any, Engine, Firm]:
    engine, firm = Engine(shutting_down), Firm()
    journal = SimpleNamespace(failure="lost", put=lambda *a: False)
    service = SimpleNamespace(engine=engine, firm=firm, journal=journal)
    db = SimpleNamespace(conn=SimpleNamespace(closed=True, broken=False))
    return service, db, engine, firm


async def test_a_session_gone_while_trading_deposes_the_gateway() -> None:
    service, db, engine, firm = parts(shutting_down=False)
    await asyncio.wait_for(watch_session(service, db, 0.01), 1)
    assert engine.stopped and firm.stepped_down


async def test_a_session_closed_by_a_clean_stop_is_no_alarm() -> None:
    service, db, engine, firm = parts(shutting_down=True)
    await asyncio.wait_for(watch_session(service, db, 0.01), 1)
    assert not engine.stopped and not firm.stepped_down
