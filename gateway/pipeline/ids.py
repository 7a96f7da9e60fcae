"""Deterministic ids and the texts a signal is kept as.

The same signal always maps to the same client_order_id, so a retry or a restart can never make
a second order for one signal. The journal keeps each signal's body with its numbers as exact
decimal text (never a float's rounding), and a hash of the normalised body decides whether a
reused signal_id carries the same order.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from enum import Enum

from brokers.base import OrderRequest, assemble
from gateway.models import Signal


def client_order_id(signal_id: str) -> str:
    digest = hashlib.blake2b(signal_id.encode(), digest_size=12).hexdigest()
    return f"gw-{digest}"


def body_hash(signal: Signal) -> str:
    """Hash of the normalised body: the same order said with other spellings is the same body
    (10 and 10.0 alike). Numbers the edge admits are carried exactly by a double, so the
    model's JSON (numbers as doubles) separates every pair of different bodies."""
    text = signal.model_dump_json(exclude=_unset_later_fields(signal))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# Fields added to Signal after signals were first journaled: left out while unset, so a body
# journaled before they existed keeps its hash (its replay is still a replay, not a conflict).
_LATER_FIELDS = ("stop_price", "stop_loss_price", "take_profit_price")


def _unset_later_fields(signal: Signal) -> set[str]:
    return {name for name in _LATER_FIELDS if getattr(signal, name) is None}


# What json.dumps does with a str (its default ensure_ascii), without its per-call set-up:
# the body is built once per signal, on the hot path.
_json_str = json.encoder.encode_basestring_ascii


def exact_body(signal: Signal) -> str:
    """The signal as one line of JSON whose numbers are exact decimal text (10.0 reads 10)."""
    parts = []
    for key, value in signal.model_dump(mode="python", exclude=_unset_later_fields(signal)).items():
        kind = type(value)
        if kind is str:
            text = _json_str(value)
        elif value is None:
            text = "null"
        elif isinstance(value, Decimal):
            text = format(value.normalize(), "f")
        elif isinstance(value, Enum):
            inner = value.value
            text = _json_str(inner) if type(inner) is str else json.dumps(inner)
        else:
            text = json.dumps(value)
        parts.append(f"{_json_str(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def order_request(signal: Signal) -> OrderRequest:
    """The order a signal makes. Every value comes from the validated Signal, whose rules are
    the request's (the symbol, a positive quantity, a limit price exactly on limit orders): no
    second validation. The client_order_id is ours."""
    return assemble(
        OrderRequest,
        {
            "client_order_id": client_order_id(signal.signal_id),
            "symbol": signal.symbol,
            "side": signal.side,
            "quantity": signal.quantity,
            "order_type": signal.order_type,
            "limit_price": signal.limit_price,
            "time_in_force": signal.time_in_force,
            "stop_price": signal.stop_price,
        },
    )
