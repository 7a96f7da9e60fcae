"""Stock contracts qualified with IB (their conId), asked once per symbol."""

from __future__ import annotations

import asyncio

from ib_async import IB, Contract

from brokers.errors import OrderRejected
from brokers.ib import mapping as m


class Contracts:
    def __init__(self, *, primary_exchange: str, currency: str, request_timeout: float):
        self._primary_exchange = primary_exchange
        self._currency = currency
        self._request_timeout = request_timeout
        self._known: dict[str, Contract] = {}

    async def get(self, ib: IB, symbol: str) -> Contract:
        contract = self._known.get(symbol)
        if contract is not None:
            return contract
        contract = m.stock(symbol, primary_exchange=self._primary_exchange, currency=self._currency)
        with m.vendor_errors(f"contract details for {symbol}"):
            found = await asyncio.wait_for(
                ib.qualifyContractsAsync(contract), self._request_timeout
            )
        if not found or found[0] is None:
            raise OrderRejected(f"IB has no stock {symbol!r} ({self._currency})", code="200")
        self._known[symbol] = contract
        return contract
