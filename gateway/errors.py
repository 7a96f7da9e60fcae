"""Every error the gateway raises past a module boundary, and every refusal reason it answers.

Exceptions (what the HTTP face turns them into):

    SignalConflict       a signal_id reused with another body (also     409 signal_id_conflict
                         while the first is being decided)
    ResumeRefused        cooldown_active | trigger_active |             409, Retry-After
                         journal_unavailable (safety.halt_resume)
    ResumeForbidden      force without the right auth code              403 auth_code_invalid
    HaltStateWriteError  a resume that cannot be made durable           503 state_unwritable
    JournalUnavailable   a journal write failed (disk full, I/O)        503 journal_unavailable
    BodyTooLarge         a request body over 1 MiB                      413 body_too_large
    JournalError         the journal cannot be opened or trusted        exit 2 at start
    StateDirError        journal lost beside other state, or the state  exit 2 at start
                         dir held by another gateway

Broker errors are ``brokers.errors`` (BrokerError > BrokerUnavailable > RateLimited | NotSent |
AnswerUnknown, OrderRejected, OrderNotFound, DuplicateOrder); nothing above ``brokers/`` sees a
vendor exception.

Refusals are not exceptions: they are Decisions with reasons (``gateway.models.ReasonCode``):
halted, reduce_only, strategy_suspended, rate_limited, quote_missing, quote_stale,
quote_invalid, max_order_quantity, max_order_notional, price_collar, buying_power,
position_risk, portfolio_heat, short_not_allowed, broker_rejected, broker_unavailable,
shutting_down, firm_exposure (the firm's limit, or PostgreSQL out of reach to check it; the
firm's own errors are ``gateway.firm.errors``). Notes on an accepted decision:
quote_conservative (priced without a usable quote), broker_answer_unknown (the order's fate is
unknown: pending_submit), halted (it landed after a halt began and was cancelled at once).
"""

from __future__ import annotations


class SignalConflict(Exception):
    """The signal_id was already used with a different body (HTTP 409)."""
