"""The ``gateway`` command in process: its parser, its config mistakes, and what it never prints."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.http.auth import Tokens
from tests.conftest import ROOT, write_config


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    commands = _subcommands(parser)
    assert set(commands) == {
        "serve",
        "status",
        "halt",
        "kill",
        "resume",
        "check-config",
        "demo",
        "firm",
        "archive",
    }
    missing = []
    for name, command in {"": parser, **commands}.items():
        assert command.description, f"gateway {name} has no description"
        for action in command._actions:
            text = action.help
            if not text or text == argparse.SUPPRESS or not text.strip():
                missing.append(f"gateway {name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == [], f"options without help: {missing}"


def test_every_subcommand_takes_config() -> None:
    for name, command in _subcommands(build_parser()).items():
        options = {o for a in command._actions for o in a.option_strings}
        assert "--config" in options, name


def test_help_of_every_subcommand_prints_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    for name in _subcommands(build_parser()):
        with pytest.raises(SystemExit) as stopped:
            main([name, "--help"])
        assert stopped.value.code == 0
        assert "--config" in capsys.readouterr().out


def test_tokens_never_show_in_their_repr() -> None:
    tokens = Tokens(strategy="strategy-secret-1234", admin="admin-secret-5678")
    for text in (repr(tokens), str(tokens), f"{tokens}", repr([tokens]), repr({"t": tokens})):
        assert "strategy-secret-1234" not in text, text
        assert "admin-secret-5678" not in text, text
    assert tokens.strategy == "strategy-secret-1234"  # still usable, only hidden


def test_the_risk_file_given_as_config_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path)
    risk_file = tmp_path / "risk_management.yaml"
    for command in ("check-config", "status", "serve"):
        assert main([command, "--config", str(risk_file)]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert f"{risk_file} is the risk file" in line
        assert "gateway.yaml" in line


def test_the_shipped_risk_file_is_recognised(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = ROOT / "config" / "risk_management.yaml"
    assert main(["check-config", "--config", str(shipped)]) == 2
    assert "is the risk file" in capsys.readouterr().err


def test_a_broken_service_config_is_not_called_a_risk_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A gateway.yaml with a typo keeps its own problems listed, even if it has a risk-like key.
    path = tmp_path / "gateway.yaml"
    path.write_text("gateway:\n  brokr: simulated\nemergency: {}\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is the risk file" not in err
    assert "gateway.brokr" in err and "emergency: unknown key" in err
