"""The ``gateway`` command.

Exit codes: 0 success, 1 a refused action (one clear line on stderr), 2 bad usage or config.
Commands that talk to a running gateway find it through the config's api host and port, and its
tokens in the environment or in ``state_dir/tokens.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from gateway.config import (
    ConfigError,
    GatewayConfig,
    default_config_path,
    effective_config_text,
    load_config,
)
from gateway.http.auth import load_tokens


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="execution-gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", type=Path, default=None, help="gateway.yaml (GATEWAY_CONFIG)")
        return p

    serve = add("serve", "run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--state-dir", type=Path)
    serve.add_argument(
        "--new-journal",
        action="store_true",
        help="start a new journal deliberately although this state dir holds a gateway's "
        "other state (an existing journal is moved aside, never deleted)",
    )
    add("status", "show the running gateway's status")
    halt = add("halt", "halt trading")
    halt.add_argument("reason", nargs="+")
    kill = add("kill", "halt and cancel every open order at the broker")
    kill.add_argument("reason", nargs="+")
    resume = add("resume", "resume trading (admin)")
    resume.add_argument("--force", action="store_true")
    resume.add_argument("--auth-code")
    add("check-config", "validate and print the effective config")
    demo = add("demo", "a guided run on the simulated broker")
    demo.add_argument("--fast", action="store_true", help="no pauses between steps")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code


def _load(path: Path | None) -> GatewayConfig:
    return load_config(path or default_config_path())


class _Remote:
    def __init__(self, config: GatewayConfig):
        api = config.gateway.api
        self.base = f"http://{api.host}:{api.port}"
        tokens = load_tokens(config.gateway.state_dir)
        if tokens is None:
            raise ConfigError(
                [
                    "no tokens: set GATEWAY_TOKEN and GATEWAY_ADMIN_TOKEN, or run on the host "
                    f"whose gateway wrote {config.gateway.state_dir / 'tokens.json'}"
                ]
            )
        self.tokens = tokens

    def call(
        self, method: str, path: str, *, admin: bool = False, body: Any = None
    ) -> httpx.Response:
        token = self.tokens.admin if admin else self.tokens.strategy
        with httpx.Client(base_url=self.base, timeout=10.0) as client:
            return client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )


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


def _print_status(status: dict[str, Any]) -> None:
    print(json.dumps(status, indent=2, sort_keys=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command
    try:
        if command == "demo":
            from gateway.demo.run import run_demo

            return run_demo(fast=args.fast)
        config = _load(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    if command == "check-config":
        print(effective_config_text(config), end="")
        return 0
    if command == "serve":
        from brokers.errors import BrokerError
        from gateway.http.server import serve
        from gateway.ops.logs import configure_logging
        from gateway.store.journal import JournalError
        from gateway.store.statedir import StateDirError, StateDirLock

        redactor = configure_logging()
        config = config.with_overrides(host=args.host, port=args.port, state_dir=args.state_dir)
        try:
            # One gateway per state dir, checked before anything in it is touched.
            with StateDirLock(config.gateway.state_dir):
                return serve(config, redactor=redactor, new_journal=args.new_journal)
        except StateDirError as exc:
            return _fail(str(exc), 2)
        except JournalError as exc:
            # Never trade on a journal we cannot read: refuse to start, and say why.
            return _fail(str(exc), 2)
        except BrokerError as exc:
            # Missing keys or a bad broker setting cannot heal by restarting (exit 2); a broker
            # that cannot be reached may (exit 1, and systemd tries again).
            code = 2 if exc.code in ("missing_credentials", "bad_config", "bad_state") else 1
            return _fail(f"broker: {exc}", code)
    try:
        remote = _Remote(config)
        if command == "status":
            response = remote.call("GET", "/v1/status")
        elif command == "halt":
            response = remote.call("POST", "/v1/halt", body={"reason": " ".join(args.reason)})
        elif command == "kill":
            response = remote.call("POST", "/v1/kill", body={"reason": " ".join(args.reason)})
        elif command == "resume":
            body = {"force": args.force, "auth_code": args.auth_code}
            response = remote.call("POST", "/v1/resume", admin=True, body=body)
        else:  # pragma: no cover - argparse refuses unknown commands
            return _fail(f"unknown command {command}", 2)
    except ConfigError as exc:
        return _fail(exc.problems[0], 2)
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach the gateway: {exc}", 1)
    if response.status_code != 200:
        return _fail(_refusal_line(response), 1)
    _print_status(response.json())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
