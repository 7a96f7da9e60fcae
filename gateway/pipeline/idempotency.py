"""The idempotency record of signal_ids: a replay answers the first decision exactly.

Three kinds of signal_id are known:

- decided: the decision is durable; a replay with the same body answers its JSON, another
  body is SignalConflict (HTTP 409);
- being decided: a duplicate with the same body waits for the first's decision, another body is
  SignalConflict at once (never another body's decision);
- decided after its intent was committed (an order at the broker, or a refusal that followed
  the intent) while the journal could not keep the decision: a replay journals it then (or
  answers JournalUnavailable again); the broker is never asked twice, and the intent's row is
  never written a second time.

A decision is remembered only once it is durable: nobody is ever told a decision that a crash
could take back. Memory holds the last ``window`` decided signal_ids; an older one is answered
from the journal (signals.signal_id is its primary key: one indexed read), with the same JSON
and the same conflict rule, so neither start time nor memory grows with the journal's history;
one archived by ``gateway archive`` is answered from its archive file (see
gateway.store.archived).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from brokers.base import BrokerOrder
from gateway.errors import SignalConflict
from gateway.models import Decision
from gateway.store.journal import Journal, JournalUnavailable


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision's JSON as answered, and whether it is the replay of an earlier one."""

    decision_json: str
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Decided:
    decision_json: str
    ticket: int  # the journal group holding the decision (see Journal.commit)
    # The decision completes an intent already committed (an order, or one of unknown fate,
    # may be at the broker): deciding the signal again would write its intent twice.
    after_intent: bool = False
    # Why the decision could not even be written (its ticket then means nothing): it is kept
    # like one whose commit failed.
    unwritten: JournalUnavailable | None = None


def decision_after_intent(decision_json: str, write: Callable[[], int]) -> Decided:
    """The decision that completes a committed intent, written by ``write`` (its ticket)."""
    try:
        return Decided(decision_json, write(), after_intent=True)
    except JournalUnavailable as exc:
        return Decided(decision_json, 0, after_intent=True, unwritten=exc)


class SignalRecord:
    def __init__(
        self,
        journal: Journal,
        *,
        durable: Callable[[int], Awaitable[None]],
        order_of: Callable[[str], BrokerOrder | None],
        window: int = 10_000,
    ):
        self._journal = journal
        self._durable = durable
        self._order_of = order_of
        self._window = window
        # The last ``window`` decided: signal_id -> (body hash, decision JSON), oldest first.
        self._decided: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._undurable: dict[str, tuple[str, str]] = {}  # decided, not yet journaled
        self._deciding: dict[str, tuple[str, asyncio.Future[str]]] = {}

    def restore(self, decided: dict[str, tuple[str, str]]) -> None:
        for signal_id, known in decided.items():
            self._remember(signal_id, known)

    def _remember(self, signal_id: str, known: tuple[str, str]) -> None:
        decided = self._decided
        decided[signal_id] = known
        if len(decided) > self._window:
            decided.popitem(last=False)

    def _journaled(self, signal_id: str) -> tuple[str, str] | None:
        """A signal_id decided before the window: its hash and decision from the journal."""
        stored = self._journal.signal(signal_id)
        if stored is None:
            # Moved out by ``gateway archive``: the live journal keeps a stub naming the file
            # that holds its first decision, so an archived id is never taken for a new one.
            known = self._journal.archived_signal(signal_id)
            if known is not None:
                self._remember(signal_id, known)
            return known
        if stored.decision is None:
            # An intent whose decision was never journaled and is not being decided here: only
            # a restart's recovery settles it (it asks the broker). Never decided twice.
            raise JournalUnavailable(
                f"signal_id {signal_id} has an order intent without a decision: it is settled "
                "at the next start"
            )
        known = (stored.body_hash, stored.decision)
        self._remember(signal_id, known)
        return known

    async def answer(
        self, signal_id: str, digest: str, decide: Callable[[], Awaitable[Decided]]
    ) -> Answer:
        known = self._decided.get(signal_id) or self._undurable.get(signal_id)
        if known is None and signal_id not in self._deciding:
            known = self._journaled(signal_id)
        if known is not None:
            if known[0] != digest:
                raise SignalConflict(f"signal_id {signal_id} was used with another body")
            if signal_id in self._undurable:
                self._journal_again(signal_id)
            return Answer(known[1], replayed=True)
        pending = self._deciding.get(signal_id)
        if pending is not None:
            if pending[0] != digest:
                raise SignalConflict(f"signal_id {signal_id} is being decided with another body")
            return Answer(await asyncio.shield(pending[1]), replayed=True)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._deciding[signal_id] = (digest, future)
        try:
            decision_json = await self._decide_durably(signal_id, digest, decide)
            future.set_result(decision_json)
            return Answer(decision_json)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller gets it from this frame
            raise
        finally:
            del self._deciding[signal_id]

    async def _decide_durably(
        self, signal_id: str, digest: str, decide: Callable[[], Awaitable[Decided]]
    ) -> str:
        decided = await decide()
        try:
            if decided.unwritten is not None:
                raise decided.unwritten
            await self._durable(decided.ticket)  # durable before anyone is told
        except JournalUnavailable:
            if decided.after_intent:
                # The intent is journaled (its order may be at the broker): keep the decision
                # to journal and answer later.
                self._undurable[signal_id] = (digest, decided.decision_json)
            raise
        self._remember(signal_id, (digest, decided.decision_json))
        return decided.decision_json

    def _journal_again(self, signal_id: str) -> None:
        """A replay of a decision the journal failed to keep: keep it now or raise again."""
        digest, decision_json = self._undurable[signal_id]
        outcome = Decision.model_validate_json(decision_json).decision.value
        self._journal.commit_now(self._journal.record_decision(signal_id, decision_json, outcome))
        # The order as it is now, never as it was then: what came since (a fill, a cancel) is
        # journaled already and must not be rolled back. An order no longer open is left to
        # the broker's update that ended it (and, after a restart, to a look-up).
        order = self._order_of(signal_id)
        if order is not None:
            self._journal.record_order_updates([(order, None, "journaled after an outage")])
        del self._undurable[signal_id]
        self._remember(signal_id, (digest, decision_json))
