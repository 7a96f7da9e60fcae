"""Two small example strategies, used by ``gateway demo``: how a strategy talks to the gateway.

Both are deterministic: they decide from a fixed series of closing prices (a :class:`BarFeed`),
size the order from a notional budget and send the signal through
:class:`gateway.client.AsyncGatewayClient`, inside ``guard()``: an exception while generating the
signal is reported to the gateway as a failure (``failure_threshold`` in a row halt it), a clean
run as a success. The gateway prices the order from its own live quote; the closes only decide.

    feed = BarFeed(DEMO_CLOSES)
    async with AsyncGatewayClient(url, token) as gw:
        result = await Momentum(gw, feed).run("AAPL")
        print(result.idea, result.decision)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import ClassVar

from gateway.client import AsyncGatewayClient
from gateway.models import Decision

CENT = Decimal("0.01")

# Six daily closes per symbol, oldest first: AAPL and SPY trend up, MSFT has sold off.
DEMO_CLOSES: dict[str, tuple[str, ...]] = {
    "AAPL": ("192.00", "194.50", "196.00", "197.50", "199.00", "200.00"),
    "MSFT": ("430.00", "426.00", "421.00", "416.00", "412.00", "410.00"),
    "SPY": ("581.00", "583.50", "585.00", "586.50", "588.00", "590.00"),
}


class FeedError(Exception):
    """The market data a strategy needs is not available (its vendor timed out, say)."""


class BarFeed:
    """Closing prices per symbol. ``outage(symbol, why)`` makes reads fail until ``restore``."""

    def __init__(self, closes: Mapping[str, Sequence[str | Decimal]]):
        self._closes = {s: tuple(Decimal(str(c)) for c in cs) for s, cs in closes.items()}
        self._outages: dict[str, str] = {}

    def closes(self, symbol: str) -> tuple[Decimal, ...]:
        why = self._outages.get(symbol)
        if why is not None:
            raise FeedError(f"{symbol} bars: {why}")
        series = self._closes.get(symbol)
        if not series:
            raise FeedError(f"{symbol} bars: no such symbol")
        return series

    def outage(self, symbol: str, why: str) -> None:
        self._outages[symbol] = why

    def restore(self, symbol: str) -> None:
        self._outages.pop(symbol, None)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of a strategy: what it saw and wanted, and the gateway's decision (or the error)."""

    strategy: str
    symbol: str
    idea: str
    decision: Decision | None = None
    error: str | None = None


def _mean(values: Sequence[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def codes(decision: Decision) -> list[str]:
    return [reason.code.value for reason in decision.reasons]


def plain(value: Decimal) -> str:
    """A quantity without trailing zeros: 100, 2.5."""
    return f"{value.normalize():f}"


def describe(decision: Decision) -> str:
    """One line: the decision, its reason codes, the order and the risk numbers."""
    risk = decision.risk
    heat = ""
    if risk.heat_before is not None and risk.heat_after is not None:
        heat = f"; position risk {risk.position_risk:.2%}, heat {risk.heat_before:.2%}"
        heat += f" -> {risk.heat_after:.2%}"
    order = decision.order
    if decision.decision.value == "accepted" and order is not None:
        state = {"filled": "filled", "canceled": "then canceled"}.get(
            order.status, f"resting ({order.status})"
        )
        if decision.reasons:
            state += f" [{', '.join(codes(decision))}]"
        return (
            f"-> accepted, {state}: {order.side.value} {plain(order.quantity)} {order.symbol} "
            f"@ {order.price:.2f}, notional {order.notional:.2f}{heat}"
        )
    return f"-> {decision.decision.value} [{', '.join(codes(decision))}]{heat}"


class Strategy:
    """The shared part: signal ids, sizing, and every run inside the client's ``guard()``."""

    name: ClassVar[str] = "strategy"

    def __init__(self, gw: AsyncGatewayClient, feed: BarFeed, *, budget: Decimal | int):
        self.gw = gw
        self.feed = feed
        self.budget = Decimal(budget)
        self._seq = 0

    def next_signal_id(self) -> str:
        # Signal ids are the idempotency keys: unique per strategy and run, never random.
        self._seq += 1
        return f"{self.name}-{self._seq}"

    def size(self, price: Decimal, budget: Decimal | None = None) -> int:
        return int((budget or self.budget) // price)

    def decide(self, closes: Sequence[Decimal]) -> tuple[str | None, str]:
        """The side to trade (or None) and a readable why."""
        raise NotImplementedError

    async def run(self, symbol: str) -> RunResult:
        """Read the bars, decide, size and submit a market order; failures go to the gateway."""
        try:
            async with self.gw.guard(self.name, symbol):
                closes = self.feed.closes(symbol)
                side, why = self.decide(closes)
                if side is None:
                    return RunResult(self.name, symbol, f"{why}: no trade")
                quantity = self.size(closes[-1])
                idea = f"{why}: {side} {quantity} {symbol} at market"
                decision = await self.gw.submit(
                    self.next_signal_id(), self.name, symbol, side, quantity
                )
        except FeedError as exc:
            # guard() has already reported it to the gateway; this run trades nothing.
            return RunResult(self.name, symbol, "no data", error=f"{type(exc).__name__}: {exc}")
        return RunResult(self.name, symbol, idea, decision)

    async def bid_below(self, symbol: str, discount: Decimal = Decimal("0.05")) -> RunResult:
        """A passive buy limit ``discount`` below the last close, for half the budget: it rests."""
        try:
            async with self.gw.guard(self.name, symbol):
                last = self.feed.closes(symbol)[-1]
                limit = (last * (1 - discount)).quantize(CENT, rounding=ROUND_DOWN)
                quantity = self.size(limit, self.budget / 2)
                idea = f"bid {discount:.0%} under the last close {last}: buy {quantity} {symbol} "
                idea += f"limit {limit}"
                decision = await self.gw.submit(
                    self.next_signal_id(),
                    self.name,
                    symbol,
                    "buy",
                    quantity,
                    order_type="limit",
                    limit_price=limit,
                )
        except FeedError as exc:
            return RunResult(self.name, symbol, "no data", error=f"{type(exc).__name__}: {exc}")
        return RunResult(self.name, symbol, idea, decision)


class Momentum(Strategy):
    """Buys what trades above the mean of its recent closes."""

    name = "momentum"

    def decide(self, closes: Sequence[Decimal]) -> tuple[str | None, str]:
        first, last, mean = closes[0], closes[-1], _mean(closes)
        why = f"up {(last - first) / first:.1%} over {len(closes)} closes ({first} -> {last})"
        if last > mean:
            return "buy", f"{why}, above its mean {mean:.2f}"
        return None, f"{why}, not above its mean {mean:.2f}"


class MeanReversion(Strategy):
    """Buys what trades more than ``band`` below the mean of its recent closes, sells above."""

    name = "mean_reversion"
    band = Decimal("0.01")

    def decide(self, closes: Sequence[Decimal]) -> tuple[str | None, str]:
        last, mean = closes[-1], _mean(closes)
        gap = (last - mean) / mean
        why = f"last close {last} is {gap:+.1%} from its mean {mean:.2f}"
        if gap < -self.band:
            return "buy", why
        if gap > self.band:
            return "sell", why
        return None, why


__all__ = [
    "DEMO_CLOSES",
    "BarFeed",
    "FeedError",
    "MeanReversion",
    "Momentum",
    "RunResult",
    "Strategy",
    "codes",
    "describe",
]
