"""Every error the gateway raises past a module boundary, and every refusal reason it answers.

Exceptions (what the HTTP face turns them into):

    SignalConflict     a signal_id reused with another body           409 signal_id_conflict
    ResumeRefused      cooldown_active | trigger_active (safety.halt)  409, Retry-After
    ResumeForbidden    force without the right auth code               403 auth_code_invalid
    JournalError       the journal cannot be opened or trusted         exit 2 at start

Broker errors are ``brokers.errors`` (BrokerError > BrokerUnavailable > RateLimited,
OrderRejected, OrderNotFound, DuplicateOrder); nothing above ``brokers/`` sees a vendor exception.

Refusals are not exceptions: they are Decisions with reasons (``gateway.models.ReasonCode``):
halted, reduce_only, strategy_suspended, rate_limited, quote_missing, quote_stale,
quote_invalid, max_order_quantity, max_order_notional, price_collar, buying_power,
position_risk, portfolio_heat, broker_rejected, broker_unavailable, shutting_down; and the
note quote_conservative on an order priced without a usable quote.
"""

from __future__ import annotations


class SignalConflict(Exception):
    """The signal_id was already used with a different body (HTTP 409)."""
