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
    OrderUnknown         no such order, or another strategy's for a     404 order_not_found
                         bound token
    OrderNotOpen         a cancel or replace of a final order (the      409 order_not_open
                         answer carries the order as it is)
    ReplaceInvalid       a replace that makes no sense for the order    422 replace_invalid
                         (nothing changes, a market order, a quantity
                         not above what filled, a price it has not)
    CancelRefused        the broker refused to cancel an open order     409 cancel_refused
    OrderNotSettled      a cancel of an order still being submitted, or  409 order_not_settled
                         of unknown fate and not at the broker (yet)
    BrokerUnreachable    the broker could not be reached and no look-   503 broker_unavailable
                         up told the order's state
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


class OrderUnknown(Exception):
    """No such order (or another strategy's, for a bound token): HTTP 404 order_not_found."""


class OrderStateError(Exception):
    """A refusal that carries the order as it is now (its view, as the API shows it)."""

    def __init__(self, message: str, order: object | None = None):
        super().__init__(message)
        self.order = order


class OrderNotOpen(OrderStateError):
    """A cancel or replace of an order that is final: HTTP 409 order_not_open."""


class OrderNotSettled(OrderStateError):
    """A cancel of an order whose submit is on the wire or of unknown fate: HTTP 409."""


class CancelRefused(OrderStateError):
    """The broker refused to cancel an order still open: HTTP 409 cancel_refused."""


class ReplaceInvalid(Exception):
    """A replace the order cannot take: HTTP 422 replace_invalid; nothing was sent."""


class BrokerUnreachable(Exception):
    """The broker could not be reached and no look-up told the order's state: HTTP 503."""
