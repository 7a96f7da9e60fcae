"""The quote book and pricing from live quotes.

The book keeps the quote received *last* per symbol, even when its timestamp is older than the one
it replaces: the newest message is the broker's current word, and an old ``ts`` in it makes the
symbol stale at once. A quote stamped more than ``quotes.max_future_s`` ahead of the gateway's
clock is invalid: an age measured against it would never grow stale. Pricing never guesses: an
unusable quote is a refusal with a reason, unless ``quotes.missing: conservative`` is
configured, and then the decision says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from brokers.base import OrderType, Quote, Side, utcnow
from gateway.config import QuoteSettings
from gateway.models import ReasonCode

BPS = Decimal(10000)


@dataclass(frozen=True, slots=True)
class Price:
    """The price an order is valued at for risk, and where it came from."""

    value: Decimal
    quote: Quote | None
    conservative: bool = False


@dataclass(frozen=True, slots=True)
class PricingRefusal:
    code: ReasonCode
    message: str


class QuoteBook:
    def __init__(
        self,
        settings: QuoteSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        link_up: Callable[[], bool] | None = None,
    ):
        self._settings = settings
        self._clock = clock
        # The adapter's own view of its link, read at pricing time: the ConnectionEvent that
        # also reports a drop may still be queued when the next signal arrives.
        self._link_probe = link_up
        self._quotes: dict[str, Quote] = {}
        self._last_good: dict[str, Decimal] = {}
        self._max_spread = Decimal(repr(settings.max_spread_bps)) / BPS
        # timedelta keeps microseconds exactly: max_future_s ahead passes, a microsecond more not.
        self._max_future = timedelta(seconds=settings.max_future_s)
        self._link_up = True

    def update(self, quote: Quote) -> None:
        self._quotes[quote.symbol] = quote
        if quote.bid > 0 and quote.ask >= quote.bid:
            self._last_good[quote.symbol] = (quote.bid + quote.ask) / 2

    def get(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    def symbols(self) -> list[str]:
        return sorted(self._quotes)

    def set_link(self, up: bool) -> None:
        """While the broker link is down every quote counts as stale: no trading on old data."""
        self._link_up = up

    def age_s(self, symbol: str) -> float | None:
        quote = self._quotes.get(symbol)
        if quote is None:
            return None
        return (self._clock() - quote.ts).total_seconds()

    def check(self, symbol: str) -> Quote | PricingRefusal:
        """The usable quote for ``symbol``, or why there is none."""
        quote = self._quotes.get(symbol)
        if quote is None:
            return PricingRefusal(ReasonCode.QUOTE_MISSING, f"no quote for {symbol}")
        if not self._link_up or (self._link_probe is not None and not self._link_probe()):
            return PricingRefusal(
                ReasonCode.QUOTE_STALE, f"{symbol}: broker link down, last quote {quote.ts}"
            )
        now = self._clock()
        if quote.ts - now > self._max_future:
            # Not fresh: the feed's clock is wrong, and an age measured from it stays negative.
            ahead = (quote.ts - now).total_seconds()
            return PricingRefusal(
                ReasonCode.QUOTE_INVALID,
                f"{symbol} quote is stamped {ahead:.3f}s ahead of the gateway's clock "
                f"(max {self._settings.max_future_s:g}s)",
            )
        age = (now - quote.ts).total_seconds()
        if age > self._settings.max_age_s:
            return PricingRefusal(
                ReasonCode.QUOTE_STALE,
                f"{symbol} quote is {age:.1f}s old (max {self._settings.max_age_s:g}s)",
            )
        if quote.bid <= 0 or quote.ask <= 0:
            return PricingRefusal(
                ReasonCode.QUOTE_INVALID, f"{symbol} quote has a side that is not positive"
            )
        if quote.bid > quote.ask:
            return PricingRefusal(
                ReasonCode.QUOTE_INVALID,
                f"{symbol} quote is crossed (bid {quote.bid} > ask {quote.ask})",
            )
        mid = (quote.bid + quote.ask) / 2
        if (quote.ask - quote.bid) / mid > self._max_spread:
            spread_bps = (quote.ask - quote.bid) / mid * BPS
            return PricingRefusal(
                ReasonCode.QUOTE_INVALID,
                f"{symbol} spread {spread_bps:.0f} bps exceeds "
                f"{self._settings.max_spread_bps:g} bps",
            )
        return quote

    def price_order(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        limit_price: Decimal | None,
        stop_price: Decimal | None = None,
    ) -> Price | PricingRefusal:
        """Value an order conservatively: market buy at ask, market sell at bid, limit and
        stop_limit at the limit, a buy stop at max(stop, ask), a sell stop at min(stop, bid)
        (the worst it can fill at once triggered, or at once when it is through the market).

        Every order still needs a usable quote: the price collar measures against it.
        """
        checked = self.check(symbol)
        if isinstance(checked, PricingRefusal):
            return self._conservative(symbol, checked, stop_price)
        if order_type.has_limit and limit_price is not None:
            return Price(limit_price, checked)
        if side is Side.BUY:
            return Price(max(checked.ask, stop_price or checked.ask), checked)
        return Price(min(checked.bid, stop_price or checked.bid), checked)

    def _conservative(
        self, symbol: str, refusal: PricingRefusal, stop_price: Decimal | None = None
    ) -> Price | PricingRefusal:
        if self._settings.missing != "conservative":
            return refusal
        last = self._last_good.get(symbol)
        if last is None:
            return refusal
        value = last * self._settings.conservative_multiplier
        return Price(max(value, stop_price or value), None, conservative=True)

    def marks(self) -> dict[str, Decimal]:
        """Mid of the last sane quote per symbol (read-only view), for marking positions."""
        return self._last_good
