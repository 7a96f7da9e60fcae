"""Bearer tokens: a strategy token and an admin token.

From GATEWAY_TOKEN / GATEWAY_ADMIN_TOKEN when set (taken as given); otherwise generated (32 random
bytes each) and written to ``state_dir/tokens.json`` with mode 0600, where the CLI finds them.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from gateway.config import ConfigError

TOKENS_FILE = "tokens.json"


class Role(StrEnum):
    STRATEGY = "strategy"
    ADMIN = "admin"


@dataclass(frozen=True)
class Tokens:
    """The two bearer tokens. Their repr hides them: a token is a secret, and a repr ends up in
    logs, tracebacks and debugger output."""

    strategy: str = field(repr=False)
    admin: str = field(repr=False)

    def role_of(self, token: str) -> Role | None:
        # Constant-time comparisons: a token is a secret.
        if hmac.compare_digest(token.encode(), self.admin.encode()):
            return Role.ADMIN
        if hmac.compare_digest(token.encode(), self.strategy.encode()):
            return Role.STRATEGY
        return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_tokens(state_dir: Path, environ: Mapping[str, str] | None = None) -> Tokens | None:
    """Tokens for a client: the environment first, then the serving gateway's tokens.json."""
    env = os.environ if environ is None else environ
    strategy, admin = env.get("GATEWAY_TOKEN"), env.get("GATEWAY_ADMIN_TOKEN")
    stored: dict[str, str] = {}
    path = state_dir / TOKENS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
    strategy = strategy or stored.get("strategy")
    admin = admin or stored.get("admin")
    if not strategy or not admin:
        return None
    return Tokens(strategy=strategy, admin=admin)


def ensure_tokens(state_dir: Path, environ: Mapping[str, str] | None = None) -> Tokens:
    """Tokens for the server: the environment's, else generated and saved for the CLI.

    Raises ConfigError when both tokens are the same (the admin's role could not be told apart).
    """
    env = os.environ if environ is None else environ
    strategy = env.get("GATEWAY_TOKEN") or ""
    admin = env.get("GATEWAY_ADMIN_TOKEN") or ""
    path = state_dir / TOKENS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
    strategy = strategy or stored.get("strategy") or secrets.token_urlsafe(32)
    admin = admin or stored.get("admin") or secrets.token_urlsafe(32)
    if strategy == admin:
        raise ConfigError(["GATEWAY_TOKEN and GATEWAY_ADMIN_TOKEN must differ"])
    if not env.get("GATEWAY_TOKEN") or not env.get("GATEWAY_ADMIN_TOKEN"):
        _write_private(path, json.dumps({"strategy": strategy, "admin": admin}))
    return Tokens(strategy=strategy, admin=admin)
