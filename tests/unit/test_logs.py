"""configure_logging: JSON lines for journald, readable lines on a terminal, no secret ever."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import warnings
from collections.abc import Iterator
from decimal import Decimal

import pytest

from gateway.ops.logs import REDACTED, configure_logging

TOKEN = "tok-3f9a7c1e5b2d"
ALPACA_SECRET = "alpaca-secret-9d8c7b6a"
ENV = {"GATEWAY_TOKEN": TOKEN, "ALPACA_SECRET_KEY": ALPACA_SECRET, "ALPACA_API_KEY": "abc"}


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_with_fields_and_ids() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ={})
    logging.getLogger("gateway.pipeline.engine").info(
        "signal decided",
        extra={
            "signal_id": "sig-1",
            "client_order_id": "gw-sig-1",
            "strategy": "momo",
            "symbol": "AAPL",
            "decision": "accepted",
            "quantity": Decimal("100"),
            "reasons": ["position_risk"],
        },
    )
    [entry] = _lines(out)
    assert list(entry)[:8] == [
        "ts",
        "level",
        "logger",
        "message",
        "signal_id",
        "client_order_id",
        "strategy",
        "symbol",
    ]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "gateway.pipeline.engine"
    assert entry["message"] == "signal decided"
    assert entry["signal_id"] == "sig-1"
    assert entry["client_order_id"] == "gw-sig-1"
    assert entry["strategy"] == "momo"
    assert entry["symbol"] == "AAPL"
    assert entry["decision"] == "accepted"
    assert entry["quantity"] == 100
    assert entry["reasons"] == ["position_risk"]
    ts = str(entry["ts"])
    assert ts.endswith("Z")
    moment = dt.datetime.fromisoformat(ts)
    assert moment.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 5


def test_level_filters_and_message_args() -> None:
    out = io.StringIO()
    configure_logging(stream=out, level="warning", environ={})
    log = logging.getLogger("gateway.test")
    log.info("dropped")
    log.warning("quote for %s is %.1f s old", "AAPL", 3.25)
    assert [e["message"] for e in _lines(out)] == ["quote for AAPL is 3.2 s old"]


def test_extra_named_like_a_fixed_field_does_not_overwrite_it() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ={})
    logging.getLogger("gateway.test").warning("x", extra={"level": "custom", "ts": 1})
    [entry] = _lines(out)
    assert entry["level"] == "WARNING"
    assert entry["extra_level"] == "custom"
    assert entry["extra_ts"] == 1


def test_exception_is_a_field_of_the_same_line() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ={})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("gateway.test").exception("failed", extra={"signal_id": "s"})
    [entry] = _lines(out)
    assert entry["level"] == "ERROR"
    assert "Traceback" in str(entry["exc_info"])
    assert "ValueError: boom" in str(entry["exc_info"])


def test_secrets_from_env_never_appear() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ=ENV)
    log = logging.getLogger("gateway.test")
    log.info(f"token in the message {TOKEN}")
    log.info("token as an argument %s and %r", TOKEN, {"auth": f"Bearer {TOKEN}"})
    log.info(
        "token in extras",
        extra={
            "header": f"Bearer {TOKEN}",
            "nested": {"keys": [ALPACA_SECRET], TOKEN: 1},
            "obj": RuntimeError(f"refused {ALPACA_SECRET}"),
        },
    )
    try:
        secret = ALPACA_SECRET
        raise PermissionError(f"broker refused key {secret}")
    except PermissionError:
        log.exception("broker login failed")
    log.warning("with a stack", stack_info=True, extra={"k": TOKEN})

    text = out.getvalue()
    assert TOKEN not in text
    assert ALPACA_SECRET not in text
    entries = _lines(out)
    assert entries[0]["message"] == f"token in the message {REDACTED}"
    assert entries[1]["message"] == (
        f"token as an argument {REDACTED} and {{'auth': 'Bearer {REDACTED}'}}"
    )
    assert entries[2]["header"] == f"Bearer {REDACTED}"
    assert entries[2]["nested"] == {"keys": [REDACTED], REDACTED: 1}
    assert entries[2]["obj"] == f"refused {REDACTED}"
    assert f"broker refused key {REDACTED}" in str(entries[3]["exc_info"])
    assert entries[4]["k"] == REDACTED


def test_short_values_are_not_secrets() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ={"GATEWAY_TOKEN": "abc"})
    logging.getLogger("gateway.test").info("abc stays")
    assert _lines(out)[0]["message"] == "abc stays"


def test_secrets_argument_and_added_later() -> None:
    out = io.StringIO()
    redactor = configure_logging(stream=out, secrets=["given-secret"], environ={})
    log = logging.getLogger("gateway.test")
    log.info("given-secret generated-token")
    redactor.add(["generated-token"])
    log.info("given-secret generated-token")
    assert [e["message"] for e in _lines(out)] == [
        f"{REDACTED} generated-token",
        f"{REDACTED} {REDACTED}",
    ]


def test_secret_with_json_special_characters() -> None:
    secret = 'p"a\\ss'
    out = io.StringIO()
    configure_logging(stream=out, secrets=[secret], environ={})
    logging.getLogger("gateway.test").info("x", extra={"repr": repr(secret)})
    assert secret not in out.getvalue()
    assert json.dumps(secret)[1:-1] not in out.getvalue()


def test_human_format_on_a_terminal() -> None:
    out = FakeTTY()
    configure_logging(stream=out, environ=ENV)  # json=None: auto
    logging.getLogger("gateway.pipeline.engine").info(
        "signal decided",
        extra={"signal_id": "sig-1", "strategy": "momo", "note": f"two words {TOKEN}"},
    )
    line = out.getvalue().rstrip("\n")
    assert not line.startswith("{")
    assert "INFO" in line
    assert "gateway.pipeline.engine: signal decided" in line
    assert "signal_id=sig-1 strategy=momo" in line
    assert f'note="two words {REDACTED}"' in line
    assert TOKEN not in line
    assert line[:24].endswith("Z")


def test_json_can_be_forced_on_a_terminal_and_human_off_one() -> None:
    tty = FakeTTY()
    configure_logging(stream=tty, json=True, environ={})
    logging.getLogger("t").info("on a tty")
    assert json.loads(tty.getvalue())["message"] == "on a tty"

    plain = io.StringIO()
    configure_logging(stream=plain, json=False, environ={})
    logging.getLogger("t").info("off a tty")
    assert plain.getvalue().rstrip().endswith("t: off a tty")


def test_configuring_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first, environ={})
    configure_logging(stream=second, environ={})
    logging.getLogger("t").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_warnings_go_through_the_log() -> None:
    out = io.StringIO()
    configure_logging(stream=out, environ=ENV)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated key {TOKEN}", UserWarning, stacklevel=1)
    [entry] = _lines(out)
    assert entry["logger"] == "py.warnings"
    assert TOKEN not in out.getvalue()
