"""The command line of ``gateway firm`` (no psycopg: ``gateway --help`` never needs it)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_firm_parser(firm: argparse.ArgumentParser) -> None:
    """``gateway firm ACTION``: each action takes ``--config`` after it, like every command."""
    sub = firm.add_subparsers(
        dest="firm_command", required=True, metavar="ACTION", help="what to do (ACTION --help)"
    )

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        action = sub.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: a --config before the action is kept, one after it wins.
        action.add_argument(
            "--config", type=Path, default=argparse.SUPPRESS, metavar="PATH", help="gateway.yaml"
        )
        return action

    for name, text in (("halt", "halt every gateway"), ("kill", "halt and kill every gateway")):
        add(name, f"{text} of the firm (durable in PostgreSQL)").add_argument(
            "reason", nargs="+", help="why, in words; recorded with the firm halt"
        )
    resume = add("resume", "lift the firm halt (each gateway then resumes by its own rules)")
    resume.add_argument(
        "--force", action="store_true", help="lift it during the cooldown (needs --auth-code)"
    )
    resume.add_argument("--auth-code", metavar="CODE", help="GATEWAY_RESUME_AUTH_CODE's value")
    add("status", "print every gateway of the firm and the firm halt as JSON")
    add("migrate", "bring the firm schema in PostgreSQL up to date (a role that may create)")
