"""Bearer tokens: a strategy token, an admin token, and tokens bound to strategies.

From GATEWAY_TOKEN / GATEWAY_ADMIN_TOKEN when set (taken as given); otherwise generated (32 random
bytes each) and written to ``state_dir/tokens.json`` with mode 0600, where the CLI finds them.
GATEWAY_STRATEGY_TOKENS="momentum=TOKEN1,meanrev=TOKEN2" binds tokens to strategies: such a
token acts only for its strategies (a token named for several strategies acts for each).
"""

from __future__ import annotations

import hmac
import json
import os
import re
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


STRATEGY_TOKENS_ENV = "GATEWAY_STRATEGY_TOKENS"
_STRATEGY_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: its role, and the strategies it is bound to (None: any)."""

    role: Role
    strategies: frozenset[str] | None = None

    def may_act_for(self, strategy: str | None) -> bool:
        return self.strategies is None or strategy in self.strategies


@dataclass(frozen=True)
class Tokens:
    """The bearer tokens. Their repr hides them: a token is a secret, and a repr ends up in
    logs, tracebacks and debugger output. ``bound`` maps a bound token to its strategies."""

    strategy: str = field(repr=False)
    admin: str = field(repr=False)
    bound: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def role_of(self, token: str) -> Role | None:
        principal = self.principal_of(token)
        return None if principal is None else principal.role

    def principal_of(self, token: str) -> Principal | None:
        # Constant-time comparisons, and every bound token compared: how long the check takes
        # says nothing about which token came close.
        given = token.encode()
        found: Principal | None = None
        if hmac.compare_digest(given, self.admin.encode()):
            found = Principal(Role.ADMIN)
        if hmac.compare_digest(given, self.strategy.encode()):
            found = found or Principal(Role.STRATEGY)
        for bound_token, strategies in self.bound.items():
            if hmac.compare_digest(given, bound_token.encode()):
                found = found or Principal(Role.STRATEGY, strategies)
        return found


def parse_strategy_tokens(
    text: str, *, reserved: tuple[str, ...] = ()
) -> dict[str, frozenset[str]]:
    """``momentum=TOKEN1,meanrev=TOKEN2`` as token -> strategies; ConfigError naming the
    variable and the pair for anything malformed (the token itself is never echoed)."""
    bound: dict[str, set[str]] = {}
    for n, pair in enumerate(text.split(","), start=1):
        name, sep, token = pair.strip().partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not token:
            raise ConfigError([f"{STRATEGY_TOKENS_ENV}: pair {n} is not strategy=token"])
        if not _STRATEGY_NAME.match(name):
            why = f"strategy {name!r} is not 1-64 of [A-Za-z0-9._:-]"
            raise ConfigError([f"{STRATEGY_TOKENS_ENV}: pair {n}: {why}"])
        if token in reserved:
            raise ConfigError(
                [f"{STRATEGY_TOKENS_ENV}: pair {n}: the token is GATEWAY_TOKEN's or the admin's"]
            )
        bound.setdefault(token, set()).add(name)
    return {token: frozenset(names) for token, names in bound.items()}


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
    text = env.get(STRATEGY_TOKENS_ENV, "").strip()
    bound = parse_strategy_tokens(text, reserved=(strategy, admin)) if text else {}
    return Tokens(strategy=strategy, admin=admin, bound=bound)
