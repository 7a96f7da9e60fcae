"""The injection point for a limit kept outside this gateway (the firm's, gateway.firm).

After the local checks passed and the local book reserved the order, and before its intent is
journaled, the engine asks the gate once; a refusal releases the local reservation and rejects
the signal ``firm_exposure``. Every path that then does not send releases the gate's
reservation too (the sender's release). Without a gate nothing changes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from brokers.base import OrderRequest
from gateway.models import DecisionKind, Reason, ReasonCode
from gateway.risk.book import Book


class ExposureGate(Protocol):
    async def reserve(self, client_order_id: str, amount: Decimal) -> str | None:
        """None when reserved; else why not (the rejection's message)."""

    def release(self, client_order_id: str) -> None:
        """The order did not leave: give its reservation back."""


async def reserve_outside(
    gate: ExposureGate | None,
    book: Book,
    request: OrderRequest,
    price: Decimal,
    *,
    reduces: bool = False,
) -> tuple[DecisionKind, list[Reason]] | None:
    """None when there is no gate, the order only shrinks a position, or the gate reserved
    it; else the rejection. A closing order asks for no room: once it fills the firm holds
    less, and refusing it at the limit would keep every gateway from getting back under."""
    if gate is None or reduces:
        return None
    why = await gate.reserve(request.client_order_id, abs(request.quantity) * price)
    if why is None:
        return None
    book.release(request.client_order_id)
    return DecisionKind.REJECTED, [Reason(code=ReasonCode.FIRM_EXPOSURE, message=why)]


def release_both(book: Book, gate: ExposureGate | None, client_order_id: str) -> None:
    book.release(client_order_id)
    if gate is not None:
        gate.release(client_order_id)
