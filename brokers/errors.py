"""Errors every broker adapter raises; nothing above ``brokers/`` sees a vendor exception.

BrokerError                 anything an adapter reports
├── BrokerUnavailable       transient: 5xx, timeout, connection lost: the request may have
│   │                       reached the broker (a submit is looked up by client_order_id
│   │                       before it is sent again)
│   ├── RateLimited         429: refused before any processing; it did not land
│   ├── NotSent             the request never left (no connection): it did not land
│   └── AnswerUnknown       raised by the retry layer only: a submit whose answer was lost and
│                           whose order could not be looked up in time; its fate is unknown
├── OrderRejected           the broker said no (buying power, invalid order, auth)
├── OrderNotFound           no such order at the broker
└── DuplicateOrder          the client_order_id is already known to the broker

Adapters make one attempt per call and raise these; ``brokers.retrying.RetryingBroker`` is the
one layer that retries (transient errors only) and raises AnswerUnknown.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every adapter error; ``code`` is the broker's own code when it gave one."""

    transient: bool = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class BrokerUnavailable(BrokerError):
    transient = True


class RateLimited(BrokerUnavailable):
    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        code: str | None = None,
        status: int | None = 429,
    ):
        super().__init__(message, code=code, status=status)
        self.retry_after_s = retry_after_s


class NotSent(BrokerUnavailable):
    """The request never left this process (the link was down): it cannot have landed."""


class AnswerUnknown(BrokerUnavailable):
    """A submit that may have reached the broker, whose answer was lost and whose order could
    not be looked up before the retries ran out: neither placed nor rejected, but unknown."""


class OrderRejected(BrokerError):
    pass


class OrderNotFound(BrokerError):
    pass


class DuplicateOrder(BrokerError):
    pass
