"""What every route depends on: the bearer token's role, and a gateway ready to trade.

Routes declare these in ``dependencies=[...]`` (or take the role as a parameter where they
record who acted). 401 for a missing or unknown token, 403 for a valid token of the wrong role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.http.auth import Principal, Role, Tokens

_bearer = HTTPBearer(auto_error=False)

# The header the ``gateway`` command sends, so the journal and the halt history tell an operator
# at the CLI from a program on the API. It names the client, it grants nothing: the role comes
# from the token alone.
CLIENT_HEADER = "X-Gateway-Client"
CLI_CLIENT = "cli"


@dataclass(frozen=True)
class Auth:
    """The two dependencies of a route: any token, or the admin token."""

    any_token: Callable[..., Awaitable[Role]]
    admin_token: Callable[..., Awaitable[Role]]


def make_auth(tokens: Tokens) -> Auth:
    def require(role: Role) -> Callable[..., Awaitable[Role]]:
        async def check(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Role:
            if credentials is None or not credentials.credentials:
                raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
            principal = tokens.principal_of(credentials.credentials)
            if principal is None:
                raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
            granted = principal.role
            if role is Role.ADMIN and granted is not Role.ADMIN:
                raise HTTPException(403, "this action needs the admin token")
            request.state.role = granted
            request.state.principal = principal
            return granted

        return check

    return Auth(any_token=require(Role.STRATEGY), admin_token=require(Role.ADMIN))


def principal(request: Request) -> Principal:
    """The principal of the request's token (set by the route's auth dependency)."""
    found: Principal = request.state.principal
    return found


class StrategyNotAllowed(Exception):
    """A bound token acting for a strategy it is not bound to (403 strategy_not_allowed)."""

    def __init__(self, strategy: str):
        super().__init__(f"this token is not bound to strategy {strategy!r}")


def check_strategy(request: Request, strategy: str | None) -> None:
    """Raise StrategyNotAllowed unless the request's token may act for ``strategy``."""
    if not principal(request).may_act_for(strategy):
        raise StrategyNotAllowed(strategy or "")


def actor(request: Request) -> str:
    """Who is acting, for the journal and the halt history: ``cli:<role>`` for the ``gateway``
    command (it sends ``X-Gateway-Client: cli``), ``api:<role>`` for everything else."""
    role: Role = request.state.role
    source = (
        "cli" if request.headers.get(CLIENT_HEADER, "").strip().lower() == CLI_CLIENT else "api"
    )
    return f"{source}:{role.value}"
