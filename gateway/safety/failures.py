"""Strategy failure tracking: explicit failures instead of fallbacks, and a halt on a streak.

One `FailureTracker` per gateway, built by the engine and passed in; there is no module-level
instance. When a strategy's consecutive failures reach `threshold`, `on_threshold(reason,
failure)` is called once for that streak (the engine halts with trigger technical_failure); the
streak ends on that strategy's next success or on a manual `reset`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

__all__ = ["FailureTracker", "FailureType", "SignalGenerationFailure"]

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION: Final = 1
RECENT_IN_STATUS: Final = 10


class FailureType(StrEnum):
    STRATEGY_ERROR = "strategy_error"
    DATA_ERROR = "data_error"
    BROKER_ERROR = "broker_error"
    TIMEOUT = "timeout"
    VALIDATION_ERROR = "validation_error"


@dataclass(frozen=True)
class SignalGenerationFailure:
    """One failure of a strategy to produce a signal (or of the broker to take it)."""

    strategy: str
    symbol: str | None
    error: str
    error_type: str
    failure_type: FailureType
    at: datetime
    consecutive: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "error": self.error,
            "error_type": self.error_type,
            "failure_type": self.failure_type.value,
            "at": self.at.isoformat(),
            "consecutive": self.consecutive,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalGenerationFailure:
        """Inverse of `to_dict`; raises ValueError (or KeyError/TypeError) on a bad dict."""
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError(f"failure time {data['at']!r} has no time zone")
        symbol = data["symbol"]
        return cls(
            strategy=_required_text(data["strategy"], "strategy"),
            symbol=None if symbol is None else _required_text(symbol, "symbol"),
            error=str(data["error"]),
            error_type=_required_text(data["error_type"], "error_type"),
            failure_type=_failure_type(data["failure_type"]),
            at=at,
            consecutive=_non_negative_int(data["consecutive"], "consecutive"),
        )


class FailureTracker:
    """Counts failures per strategy, symbol and type; calls `on_threshold` once per streak."""

    def __init__(
        self,
        *,
        threshold: int,
        on_threshold: Callable[[str, SignalGenerationFailure], None] | None = None,
        clock: Callable[[], datetime],
        history_size: int = 100,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"threshold must be an integer >= 1, got {threshold!r}")
        if isinstance(history_size, bool) or not isinstance(history_size, int) or history_size < 1:
            raise ValueError(f"history_size must be an integer >= 1, got {history_size!r}")
        self._threshold = threshold
        self._on_threshold = on_threshold
        self._clock = clock
        self._history: deque[SignalGenerationFailure] = deque(maxlen=history_size)
        self._consecutive: dict[str, int] = {}
        # Strategies whose current streak already called on_threshold.
        self._fired: set[str] = set()
        self._by_strategy: Counter[str] = Counter()
        self._by_symbol: Counter[str] = Counter()
        self._by_type: Counter[str] = Counter()
        self._total = 0
        self._last_reset: dict[str, str] | None = None

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def consecutive(self) -> int:
        """The longest current streak over all strategies."""
        return max(self._consecutive.values(), default=0)

    def consecutive_for(self, strategy: str) -> int:
        return self._consecutive.get(strategy, 0)

    def record_failure(
        self,
        strategy: str,
        symbol: str | None,
        error: BaseException | str,
        failure_type: FailureType | str = FailureType.STRATEGY_ERROR,
        *,
        error_type: str | None = None,
    ) -> SignalGenerationFailure:
        """Record one failure; at the threshold, call on_threshold once for this streak.

        `error_type` defaults to the exception's class name (or the failure type for a message).
        If on_threshold raises, the failure stays recorded, the exception propagates, and the
        next failure of the streak calls it again (a halt that did not happen is retried).
        """
        strategy = _required_text(strategy, "strategy")
        if symbol is not None:
            symbol = _required_text(symbol, "symbol")
        kind = _failure_type(failure_type)
        if isinstance(error, BaseException):
            message = str(error) or repr(error)
            name = error_type or type(error).__name__
        elif isinstance(error, str):
            message = error
            name = error_type or kind.value
        else:
            raise ValueError(f"error must be an exception or a message, got {error!r}")
        count = self._consecutive.get(strategy, 0) + 1
        failure = SignalGenerationFailure(
            strategy=strategy,
            symbol=symbol,
            error=message,
            error_type=name,
            failure_type=kind,
            at=self._clock(),
            consecutive=count,
        )
        self._consecutive[strategy] = count
        self._by_strategy[strategy] += 1
        if symbol is not None:
            self._by_symbol[symbol] += 1
        self._by_type[kind.value] += 1
        self._total += 1
        self._history.append(failure)
        logger.warning(
            "signal failure %d/%d of strategy %s (symbol %s, %s): %s: %s",
            count,
            self._threshold,
            strategy,
            symbol,
            kind.value,
            name,
            message,
        )
        if count >= self._threshold and strategy not in self._fired:
            reason = f"{count} consecutive failures of strategy {strategy}: {name}: {message}"
            logger.critical("failure threshold reached: %s", reason)
            if self._on_threshold is not None:
                self._on_threshold(reason, failure)
            self._fired.add(strategy)
        return failure

    def record_success(self, strategy: str, symbol: str | None = None) -> None:
        """A signal produced: the strategy's streak ends."""
        strategy = _required_text(strategy, "strategy")
        if self._consecutive.get(strategy, 0):
            logger.info(
                "strategy %s recovered after %d failures", strategy, self._consecutive[strategy]
            )
        self._consecutive[strategy] = 0
        self._fired.discard(strategy)

    def reset(self, by: str) -> None:
        """Manual admin reset: every streak ends; totals and history stay."""
        by = _required_text(by, "by")
        logger.warning("failure streaks reset by %s (were %s)", by, self._consecutive)
        self._consecutive = dict.fromkeys(self._consecutive, 0)
        self._fired.clear()
        self._last_reset = {"by": by, "at": self._clock().isoformat()}

    def status(self) -> dict[str, Any]:
        """The status's `failures` object (a superset of {consecutive, by_strategy, by_symbol})."""
        return {
            "consecutive": self.consecutive,
            "threshold": self._threshold,
            "consecutive_by_strategy": dict(self._consecutive),
            "by_strategy": dict(self._by_strategy),
            "by_symbol": dict(self._by_symbol),
            "by_type": dict(self._by_type),
            "total": self._total,
            "recent": [f.to_dict() for f in list(self._history)[-RECENT_IN_STATUS:]],
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to restore this tracker, as plain JSON values (not its settings:
        a restore runs on the settings of its own run)."""
        return {
            "version": SNAPSHOT_VERSION,
            "consecutive": dict(self._consecutive),
            "fired": sorted(self._fired),
            "by_strategy": dict(self._by_strategy),
            "by_symbol": dict(self._by_symbol),
            "by_type": dict(self._by_type),
            "total": self._total,
            "history": [f.to_dict() for f in self._history],
            "last_reset": None if self._last_reset is None else dict(self._last_reset),
        }

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        *,
        threshold: int,
        on_threshold: Callable[[str, SignalGenerationFailure], None] | None = None,
        clock: Callable[[], datetime],
        history_size: int = 100,
    ) -> FailureTracker:
        """A tracker continuing from `snapshot` (with this run's settings).

        A streak that already called on_threshold does not call it again. Raises ValueError
        when the snapshot is malformed or of an unknown version.
        """
        tracker = cls(
            threshold=threshold, on_threshold=on_threshold, clock=clock, history_size=history_size
        )
        try:
            if snapshot["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"unknown failure snapshot version {snapshot['version']!r}")
            tracker._consecutive = _counts(snapshot["consecutive"], "consecutive")
            tracker._fired = {_required_text(s, "fired") for s in _as_list(snapshot["fired"])}
            tracker._by_strategy = Counter(_counts(snapshot["by_strategy"], "by_strategy"))
            tracker._by_symbol = Counter(_counts(snapshot["by_symbol"], "by_symbol"))
            by_type = _counts(snapshot["by_type"], "by_type")
            for name in by_type:
                _failure_type(name)
            tracker._by_type = Counter(by_type)
            tracker._total = _non_negative_int(snapshot["total"], "total")
            tracker._history.extend(
                SignalGenerationFailure.from_dict(item) for item in _as_list(snapshot["history"])
            )
            last_reset = snapshot["last_reset"]
            if last_reset is not None:
                tracker._last_reset = {
                    "by": str(last_reset["by"]),
                    "at": str(last_reset["at"]),
                }
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed failure snapshot: {exc!r}") from exc
        return tracker


def _required_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _failure_type(value: object) -> FailureType:
    if isinstance(value, str) and value in _FAILURE_TYPES:
        return FailureType(value)
    choices = ", ".join(t.value for t in FailureType)
    raise ValueError(f"failure_type must be one of {choices}, got {value!r}")


_FAILURE_TYPES: Final = frozenset(t.value for t in FailureType)


def _non_negative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _as_list(value: object) -> Iterable[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _counts(value: object, name: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object of counts, got {type(value).__name__}")
    return {
        _required_text(key, f"{name} key"): _non_negative_int(count, f"{name}[{key!r}]")
        for key, count in value.items()
    }
