"""Broker adapters behind one protocol (``brokers.base.Broker``).

The simulated broker needs nothing beyond the core install; ``AlpacaBroker`` needs the
``alpaca`` extra and ``IBBroker`` the ``ib`` extra, so they are imported from their modules.
"""

from brokers.base import (
    Account,
    Broker,
    BrokerEvent,
    BrokerOrder,
    CancelReport,
    ConnectionEvent,
    Fill,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    QuoteEvent,
    Side,
    TimeInForce,
)
from brokers.errors import (
    AnswerUnknown,
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    NotSent,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from brokers.retrying import RetryingBroker, RetryPolicy

__all__ = [
    "Account",
    "AnswerUnknown",
    "Broker",
    "BrokerError",
    "BrokerEvent",
    "BrokerOrder",
    "BrokerUnavailable",
    "CancelReport",
    "ConnectionEvent",
    "DuplicateOrder",
    "Fill",
    "NotSent",
    "OrderEvent",
    "OrderNotFound",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "Quote",
    "QuoteEvent",
    "RateLimited",
    "RetryPolicy",
    "RetryingBroker",
    "Side",
    "TimeInForce",
]
