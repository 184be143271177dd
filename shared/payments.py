"""The money rule every payment path applies: the payments worker and the orders worker."""

from __future__ import annotations

#: Why a success did not pay its order: the provider's amount is not the order's.
AMOUNT_MISMATCH = "amount_mismatch"


def amount_matches(paid_cents: int | None, order_cents: int) -> bool:
    """A success pays only the order's exact amount; a provider that sends none is trusted."""
    return paid_cents is None or paid_cents == order_cents
