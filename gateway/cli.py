"""The ``gateway`` command.

Exit codes (the README lists them too):

    0  success; for ``serve``, a clean stop (SIGTERM)
    1  a refused action, or no answer from the gateway: one clear line on stderr
    2  bad usage or config (missing keys, a bad setting, an unreadable journal, a broker extra
       not installed): fix it and retry; one clear line on stderr
    3  ``serve`` could not start: the broker unreachable or recovery failed; one log line
       (the traceback at ``--log-level debug``); systemd retries

Commands that talk to a running gateway find it through the config's api host and port, and its
tokens in the environment or in ``state_dir/tokens.json``; they say ``X-Gateway-Client: cli`` so
the journal records their actions as the CLI's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.config import (
    ConfigError,
    GatewayConfig,
    default_config_path,
    effective_config_text,
    load_config,
)
from gateway.firm.parser import add_firm_parser
from gateway.http.auth import Tokens, load_tokens
from gateway.http.deps import CLI_CLIENT, CLIENT_HEADER

log = logging.getLogger("gateway.cli")

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_STARTED = 0, 1, 2, 3
EXIT_SIGPIPE = 128 + 13  # what a shell reports for a command its reader stopped reading

# broker: (the extra that installs its SDK, the SDK); the adapter package imports all of it.
_BROKER_EXTRAS = {"alpaca": ("alpaca", "alpaca-py"), "ib": ("ib", "ib_async")}
# Top-level keys of risk_management.yaml, the file most often given by mistake.
_RISK_FILE_KEYS = frozenset({"risk_management", "emergency", "pre_trade"})
# BrokerError codes that restarting cannot heal: exit 2, not 3.
# (bad_state: the simulated account's file cannot be read; it will not heal by itself either.)
_BROKER_CONFIG_CODES = frozenset({"missing_credentials", "bad_config", "bad_state"})


def build_parser() -> argparse.ArgumentParser:
    """The command line: every subcommand takes ``--config``; every option says what it does."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="execution-gateway: run the gateway, or operate a running one.",
        epilog="Exit codes: 0 success, 1 refused, 2 bad usage or config, 3 could not start.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND --help)"
    )

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="PATH",
            help="the service config, gateway.yaml (default: $GATEWAY_CONFIG, "
            "else config/gateway.yaml)",
        )
        return command

    _add_serve(add("serve", "run the gateway (in the foreground, until SIGTERM)"))
    add("status", "print the running gateway's status as JSON")
    halt = add("halt", "halt trading (any token)")
    halt.add_argument("reason", nargs="+", help="why, in words; recorded with the halt")
    kill = add("kill", "halt, then cancel every open order at the broker (any token)")
    kill.add_argument("reason", nargs="+", help="why, in words; recorded with the halt")
    resume = add("resume", "resume trading (admin token)")
    resume.add_argument(
        "--force",
        action="store_true",
        help="resume during the cooldown or while the trigger is active (needs --auth-code)",
    )
    resume.add_argument(
        "--auth-code",
        metavar="CODE",
        help="the resume code the gateway was given as GATEWAY_RESUME_AUTH_CODE",
    )
    add_firm_parser(add("firm", "the firm: every gateway on one PostgreSQL (firm: section)"))
    _add_archive(add("archive", "move old trading days out of the live journal (gateway stopped)"))
    add("check-config", "validate the config and print it with secrets masked")
    demo = add("demo", "a guided run on the simulated broker, in a temporary state dir")
    demo.add_argument("--fast", action="store_true", help="no pauses between steps")
    return parser


def _add_serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", help="address to listen on (default: gateway.api.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: gateway.api.port)")
    serve.add_argument(
        "--state-dir",
        type=Path,
        metavar="PATH",
        help="journal, halt state and tokens (default: gateway.state_dir)",
    )
    serve.add_argument(
        "--new-journal",
        action="store_true",
        help="start a new journal deliberately although this state dir holds a gateway's "
        "other state (an existing journal is moved aside, never deleted)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="least severe log records written (default: info; debug adds tracebacks)",
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _add_archive(archive: argparse.ArgumentParser) -> None:
    archive.add_argument(
        "--before",
        type=_day,
        required=True,
        metavar="DATE",
        help="archive the trading days before this one (YYYY-MM-DD; a day starts at "
        "schedule.trading_day_reset in schedule.timezone)",
    )
    archive.add_argument(
        "--state-dir", type=Path, metavar="PATH", help="default: gateway.state_dir"
    )
    archive.add_argument(
        "--vacuum",
        action="store_true",
        help="then VACUUM the live journal, giving the freed space back to the disk (needs "
        "free space about the journal's size; without it the space is reused by new rows)",
    )


def _fail(message: str, code: int) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code


def _stdout_to_devnull() -> None:
    # After a broken pipe: the interpreter's last flush of stdout must not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _emit(text: str, end: str = "\n") -> None:
    """Print to stdout; a reader that stopped reading (``| head -1``) is not an error."""
    try:
        print(text, end=end, flush=True)
    except BrokenPipeError:
        _stdout_to_devnull()


# --- config ------------------------------------------------------------------------------


def _is_risk_file(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, Mapping) and "gateway" not in data and bool(_RISK_FILE_KEYS & set(data))


def _load(path: Path | None) -> GatewayConfig:
    path = path or default_config_path()
    try:
        return load_config(path)
    except ConfigError:
        if _is_risk_file(path):
            raise ConfigError(
                [
                    f"{path} is the risk file (risk_management.yaml), not the service config: "
                    "give --config the gateway.yaml that names it in gateway.risk_config"
                ]
            ) from None
        raise


def missing_extra(broker: str) -> str | None:
    """One line saying how to install the broker's SDK when it is missing, else None."""
    if broker not in _BROKER_EXTRAS:
        return None
    extra, sdk = _BROKER_EXTRAS[broker]
    try:
        importlib.import_module(f"brokers.{broker}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in ("brokers", "gateway"):
            raise  # our own module missing is a broken install, not a missing extra
        return (
            f"broker {broker!r} needs {sdk}, which is not installed "
            f"(no module {exc.name!r}): pip install 'execution-gateway[{extra}]'"
        )
    return None


def _check_config(config: GatewayConfig) -> int:
    _emit(effective_config_text(config), end="")
    problem = missing_extra(config.gateway.broker)
    if problem is not None:
        # The file is valid; this host cannot run it yet. A warning, so check-config still
        # validates a production config on a build machine without the SDK.
        print(f"gateway: warning: {problem}", file=sys.stderr)
    return EXIT_OK


# --- serve -------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.http.server import serve
    from gateway.ops.logs import background_logging, configure_logging

    problem = missing_extra(config.gateway.broker)
    if problem is not None:
        return _fail(problem, EXIT_USAGE)
    from gateway.store.statedir import StateDirLock

    redactor = configure_logging(level=args.log_level)
    if config.firm is not None:
        redactor.add(config.firm.secrets(os.environ))  # the firm's DSN holds a password
    config = config.with_overrides(host=args.host, port=args.port, state_dir=args.state_dir)
    try:
        # One gateway per state dir, checked before anything in it is touched.
        with StateDirLock(config.gateway.state_dir), background_logging():
            return serve(config, redactor=redactor, new_journal=args.new_journal)
    except Exception as exc:
        # Whatever stopped the start: serve() raises nothing once the gateway is up.
        return _start_failure(exc)


def _start_failure(exc: Exception) -> int:
    """Exit 2 (one line on stderr) for what only a fix heals, else exit 3 (one log line)."""
    from brokers.errors import BrokerError
    from gateway.store.journal import JournalError
    from gateway.store.statedir import StateDirError

    if isinstance(exc, ConfigError):
        return _fail("; ".join(exc.problems), EXIT_USAGE)
    from gateway.firm.errors import FirmError

    if isinstance(exc, FirmError):
        # The firm's PostgreSQL unreachable at a first start, the gateway_id taken, a schema
        # too new: never trade outside the firm's view.
        return _fail(f"firm: {exc}", EXIT_USAGE)
    if isinstance(exc, JournalError | StateDirError):
        # Never trade on a journal we cannot read, or beside lost state, or in a state dir
        # another gateway holds: refuse to start, and say why.
        return _fail(str(exc), EXIT_USAGE)
    if isinstance(exc, BrokerError) and exc.code in _BROKER_CONFIG_CODES:
        return _fail(f"broker: {exc}", EXIT_USAGE)
    what = f"broker: {exc}" if isinstance(exc, BrokerError) else f"{type(exc).__name__}: {exc}"
    log.error("gateway could not start (exit 3): %s", what)
    log.debug("the start failed here", exc_info=exc)
    return EXIT_NOT_STARTED


# --- commands that talk to a running gateway ---------------------------------------------


def _api_base(host: str, port: int) -> str:
    # A gateway listening on every address is reached on loopback from its own host.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Remote:
    """The running gateway: its URL from the config, its tokens from the env or tokens.json."""

    def __init__(self, config: GatewayConfig):
        api = config.gateway.api
        self.base = _api_base(api.host, api.port)
        tokens = load_tokens(config.gateway.state_dir)
        if tokens is None:
            raise ConfigError(
                [
                    "no tokens: set GATEWAY_TOKEN and GATEWAY_ADMIN_TOKEN, or run on the host "
                    f"whose gateway wrote {config.gateway.state_dir / 'tokens.json'}"
                ]
            )
        self.tokens: Tokens = tokens

    def call(
        self, method: str, path: str, *, admin: bool = False, body: Any = None
    ) -> httpx.Response:
        token = self.tokens.admin if admin else self.tokens.strategy
        headers = {"Authorization": f"Bearer {token}", CLIENT_HEADER: CLI_CLIENT}
        # A kill waits for the broker's cancels: give it longer than a status read.
        timeout = httpx.Timeout(60.0 if path == "/v1/kill" else 10.0, connect=5.0)
        with httpx.Client(base_url=self.base, timeout=timeout) as client:
            return client.request(method, path, json=body, headers=headers)


def _refusal_line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body
        code = body.get("code")
        retry = body.get("retry_after_s")
        line = f"{code}: {message}" if code else str(message)
        if retry is not None:
            line += f" (retry after {float(retry):.0f}s)"
        return line
    return str(body)


def _unreachable_line(base: str, exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return (
            f"no answer from the gateway at {base} in time; the action may still have taken "
            "effect: check with gateway status"
        )
    return f"cannot reach the gateway at {base}: {str(exc) or type(exc).__name__}"


def _remote_command(args: argparse.Namespace, config: GatewayConfig) -> int:
    try:
        remote = _Remote(config)
    except ConfigError as exc:
        return _fail(exc.problems[0], EXIT_USAGE)
    command = args.command
    try:
        if command == "status":
            response = remote.call("GET", "/v1/status")
        elif command in ("halt", "kill"):
            response = remote.call("POST", f"/v1/{command}", body={"reason": " ".join(args.reason)})
        elif command == "resume":
            body = {"force": args.force, "auth_code": args.auth_code}
            response = remote.call("POST", "/v1/resume", admin=True, body=body)
        else:  # pragma: no cover - argparse refuses unknown commands
            return _fail(f"unknown command {command}", EXIT_USAGE)
    except httpx.HTTPError as exc:
        return _fail(_unreachable_line(remote.base, exc), EXIT_REFUSED)
    if response.status_code != 200:
        return _fail(_refusal_line(response), EXIT_REFUSED)
    _emit(json.dumps(response.json(), indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # Output cut short by its reader (``gateway demo | head``): end quietly, as SIGPIPE would.
        _stdout_to_devnull()
        return EXIT_SIGPIPE


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from gateway.demo.run import run_demo

        return run_demo(fast=args.fast)
    try:
        config = _load(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check-config":
        return _check_config(config)
    if args.command == "serve":
        return _serve(args, config)
    if args.command == "firm":
        return _firm(args, config)
    if args.command == "archive":
        from gateway.archive_cli import run_archive

        return run_archive(args, config)
    return _remote_command(args, config)


def _firm(args: argparse.Namespace, config: GatewayConfig) -> int:
    try:
        from gateway.firm import cli as firm_cli
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "psycopg":
            raise
        return _fail("firm: needs psycopg: pip install 'execution-gateway[firm]'", EXIT_USAGE)
    return firm_cli.run(config, args, os.environ)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
