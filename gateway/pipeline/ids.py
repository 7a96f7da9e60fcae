"""Deterministic ids: the same signal always maps to the same client_order_id, so a retry or a
restart can never make a second order for one signal."""

from __future__ import annotations

import hashlib

from gateway.models import Signal


def client_order_id(signal_id: str) -> str:
    digest = hashlib.blake2b(signal_id.encode(), digest_size=12).hexdigest()
    return f"gw-{digest}"


def body_hash(signal: Signal) -> str:
    """Hash of the normalised body: the same order said with other spellings is the same body."""
    return hashlib.blake2b(signal.model_dump_json().encode(), digest_size=16).hexdigest()
