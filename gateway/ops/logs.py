"""Structured logging on the standard library, with secrets redacted.

Convention: a fixed message and the ids as extras, so that logs can be searched by id::

    log.info("signal decided", extra={"signal_id": sid, "strategy": s, "symbol": sym,
                                      "client_order_id": coid, "decision": "accepted"})

Under systemd (stdout is not a terminal) every record is one JSON object per line, which
journald stores as is; on a terminal the same record is one readable line. The standard library
is enough for this (a formatter and a filter), so there is no structlog dependency.

Every known secret (the values passed in and those of :data:`SECRET_ENV_VARS`) is replaced with
``***`` in the message, its arguments, the extras, exception tracebacks and stack traces before
any handler formats the record, and once more in the final line as a safety net.

uvicorn installs its own handlers unless it is given ``log_config=None``; pass that, so its
records go through the handler configured here and are redacted too.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime as dt
import enum
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "SECRET_ENV_VARS",
    "HumanFormatter",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "background_logging",
    "configure_logging",
]

REDACTED = "***"
SECRET_ENV_VARS = (
    "GATEWAY_TOKEN",
    "GATEWAY_ADMIN_TOKEN",
    "GATEWAY_RESUME_AUTH_CODE",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
)
# Shorter values would be redacted everywhere they happen to occur ("1", "true"), hiding
# ordinary text while protecting nothing.
MIN_SECRET_LENGTH = 4

# Ids that lead every JSON line in this order, so a reader finds them in the same place.
ID_FIELDS = ("signal_id", "client_order_id", "strategy", "symbol")

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_JSON_KEYS = frozenset({"ts", "level", "logger", "message", "exc_info", "stack_info"})


class Redactor:
    """Replaces every occurrence of the known secret values with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Add secrets learned later (e.g. tokens `gateway serve` generated)."""
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                self._secrets.add(secret)
                # The same secret as it appears inside a JSON string (quotes, backslashes).
                self._secrets.add(json.dumps(secret)[1:-1])
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """The text with every secret replaced."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """A copy of an extra's value with secrets replaced (containers recursively).

        Numbers, booleans and None are kept as they are; any other object whose text holds a
        secret is replaced by that redacted text.
        """
        if self._pattern is None or value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        text = str(value)
        redacted = self.text(text)
        return value if redacted == text else redacted


class RedactingFilter(logging.Filter):
    """A handler filter that redacts a record in place before it is formatted.

    The message is rendered with its arguments first (then args are dropped), so a secret
    inside an argument of any type is caught. Exception and stack text are rendered here too.
    """

    _exception_formatter = logging.Formatter()

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = self.redactor.value(value)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, the known ids first."""
    found = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
    ordered = {k: found.pop(k) for k in ID_FIELDS if k in found}
    ordered.update(sorted(found.items()))
    return ordered


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _timestamp(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, ids, other extras, exc_info."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            # An extra named like a fixed field must not overwrite it.
            entry[f"extra_{key}" if key in _JSON_KEYS else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, default=_json_default, ensure_ascii=False)
        return self.redactor.text(line)


class HumanFormatter(logging.Formatter):
    """``2026-11-25T11:37:16.123Z INFO  gateway.pipeline.engine: signal decided ...``."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        parts = [
            moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            f"{record.levelname:<8}",
            f"{record.name}:",
            record.getMessage(),
        ]
        for key, value in _extras(record).items():
            text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
            parts.append(f"{key}={json.dumps(text) if ' ' in text or not text else text}")
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self.redactor.text(line)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def configure_logging(
    *,
    level: int | str = "INFO",
    json: bool | None = None,
    stream: TextIO = sys.stdout,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> Redactor:
    """Send every log record to ``stream``, as JSON lines or (on a terminal) readable lines.

    ``json=None`` picks JSON unless ``stream`` is a terminal. Replaces the handler a previous
    call installed (other handlers on the root logger are left alone). Returns the
    :class:`Redactor`, so secrets known only later can be added with ``redactor.add(...)``.
    """
    redactor = Redactor([*secrets, *(environ.get(name, "") for name in SECRET_ENV_VARS)])
    as_json = not _is_tty(stream) if json is None else json
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redactor) if as_json else HumanFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))
    handler.set_name("gateway")

    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "gateway":
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # warnings.warn(...) goes to the log (and through redaction) instead of raw stderr.
    logging.captureWarnings(True)
    return redactor


class _RecordQueueHandler(logging.handlers.QueueHandler):
    """Queues the record with its message rendered (its arguments may change once the caller
    moves on) and everything else as it was (exception info included), so the line the
    listener writes is the line the caller's thread would have written."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        queued = copy.copy(record)
        queued.msg = queued.message = record.getMessage()
        queued.args = None
        return queued


class _BatchWriter:
    """The writer thread of :func:`background_logging`, with a queue that wakes it only now
    and then.

    A queue that wakes its reader on every record (queue.SimpleQueue, QueueListener) costs the
    event loop a futex wake and, on a loaded host, a context switch per line: measured under
    bench/http.py that was ~0.17 ms per signal (one line each), more than the rest of the HTTP
    path. Here the caller only appends to a deque (atomic, no system call); the thread wakes
    every ``interval_s`` and writes what has piled up, so a line is at most that late. A
    WARNING or worse wakes it at once: what an operator must see is not held back."""

    def __init__(self, handler: logging.Handler, interval_s: float = 0.05) -> None:
        self._handler = handler
        self._interval = interval_s
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def put_nowait(self, record: logging.LogRecord) -> None:
        # The name QueueHandler.enqueue calls: this object stands in for its queue.
        self._records.append(record)
        if record.levelno >= logging.WARNING:
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write everything queued, then end the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._drain()  # anything a late caller queued while the thread was ending

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        records, handler = self._records, self._handler
        while records:
            record = records.popleft()
            # The handler's level as QueueListener(respect_handler_level=True) applied it.
            if record.levelno >= handler.level:
                try:
                    handler.handle(record)
                except Exception:  # a record the filter cannot redact: it, not the thread
                    handler.handleError(record)


@contextlib.contextmanager
def background_logging() -> Iterator[None]:
    """While inside, the handler :func:`configure_logging` installed formats, redacts and writes
    on a thread of its own (:class:`_BatchWriter`): the caller only queues the record. On the
    event loop of ``gateway serve`` a log line then never waits for a slow reader of stdout
    (journald, a pipe), and its JSON and redaction are not paid between two requests. Leaving
    flushes every queued line and puts the handler back."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == "gateway"), None)
    if handler is None:
        yield
        return
    writer = _BatchWriter(handler)
    front = _RecordQueueHandler(writer)  # type: ignore[arg-type]  # has put_nowait, as needed
    front.set_name("gateway")
    # Swapped in one assignment each way: between a remove and an add the root logger has no
    # handler, and a record another thread logs then goes to logging.lastResort (stderr,
    # unredacted).
    root.handlers = [front if h is handler else h for h in root.handlers]
    writer.start()
    try:
        yield
    finally:
        root.handlers = [handler if h is front else h for h in root.handlers]
        writer.stop()  # writes what is queued, then ends the thread
