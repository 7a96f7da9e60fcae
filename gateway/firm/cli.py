"""``gateway firm halt|kill|resume|status|migrate``: straight to PostgreSQL, no gateway needed.

The DSN comes from the environment variable the config's ``firm.dsn_env`` names. Exit codes as
for every command: 0 done, 1 refused or PostgreSQL out of reach (one line), 2 bad usage or
config (no firm section, the DSN's variable unset, a schema this version cannot use).

A firm resume follows the resume rules of the config's risk file: refused until
``resume_cooldown_s`` after the firm halt began, unless ``--force`` with the right
``--auth-code`` (``GATEWAY_RESUME_AUTH_CODE`` in this environment). It lifts the firm halt only:
each gateway then resumes by its own rules.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import FirmDsnMissing, GatewayConfig
from gateway.firm.control import firm_halt, firm_resume, read_control
from gateway.firm.errors import FirmError, FirmSchemaError
from gateway.firm.link import LINK_ERRORS, connect, one_line
from gateway.firm.schema import Conn, migrate
from gateway.firm.status import firm_status
from gateway.safety.halt_resume import ResumeForbidden, check_auth_code

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
CONNECT_TIMEOUT_S = 10.0


class Refused(Exception):
    """The action was refused (exit 1); the message is the line to print."""


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


async def _resume(conn: Conn, config: GatewayConfig, args: Any, env: Mapping[str, str]) -> Any:
    control = await read_control(conn)
    if not control.halted:
        return control
    by = _who()
    detail = ""
    if args.force:
        try:
            check_auth_code(args.auth_code, env.get("GATEWAY_RESUME_AUTH_CODE"), by)
        except ResumeForbidden as exc:
            raise Refused(f"auth_code_invalid: {exc}") from None
        detail = "forced"
    elif control.since is not None:
        cooldown = timedelta(seconds=config.risk.emergency.resume_cooldown_s)
        left = (control.since + cooldown - datetime.now(UTC)).total_seconds()
        if left > 0:
            raise Refused(
                f"cooldown_active: the firm halt may be lifted from "
                f"{(control.since + cooldown).isoformat()} (retry after {left:.0f}s)"
            )
    return await firm_resume(conn, by=by, detail=detail)


async def _act(config: GatewayConfig, args: Any, env: Mapping[str, str], dsn: str) -> Any:
    conn = await connect(dsn, CONNECT_TIMEOUT_S)
    try:
        await migrate(conn)
        action = args.firm_command
        if action == "migrate":
            return {"schema_version": await migrate(conn)}
        if action == "status":
            return await firm_status(conn)
        if action in ("halt", "kill"):
            control = await firm_halt(conn, " ".join(args.reason), by=_who(), kill=action == "kill")
            return control.to_json()
        result = await _resume(conn, config, args, env)
        return result.to_json()
    finally:
        await conn.close()


def run(config: GatewayConfig, args: Any, env: Mapping[str, str]) -> int:
    """One firm command; prints its answer as JSON, or one line on stderr."""
    if config.firm is None:
        return _fail("the config has no firm: section: nothing to talk to", EXIT_USAGE)
    try:
        dsn = config.firm.dsn(env)
    except FirmDsnMissing as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        answer = asyncio.run(_act(config, args, env, dsn))
    except FirmSchemaError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except Refused as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except FirmError as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except LINK_ERRORS as exc:
        return _fail(f"the firm's PostgreSQL failed: {one_line(exc)}", EXIT_REFUSED)
    print(json.dumps(answer, indent=2, default=str), flush=True)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"gateway: firm: {message}", file=sys.stderr)
    return code
