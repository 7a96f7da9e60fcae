"""Errors every broker adapter raises; nothing above ``brokers/`` sees a vendor exception.

BrokerError                 anything an adapter reports
├── BrokerUnavailable       transient: connection lost before sending, 429, 5xx, timeout;
│   └── RateLimited         safe to retry (a submit is looked up by client_order_id first)
├── OrderRejected           the broker said no (buying power, invalid order, auth)
├── OrderNotFound           no such order at the broker
└── DuplicateOrder          the client_order_id is already known to the broker
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


class OrderRejected(BrokerError):
    pass


class OrderNotFound(BrokerError):
    pass


class DuplicateOrder(BrokerError):
    pass
