"""Pure rules of turning a hold into an order and settling payments that came first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.holds import hold_is_live
from shared.messages.replies import OrderRefusalReason
from shared.payments import amount_matches


@dataclass(frozen=True)
class HoldView:
    hold_id: uuid.UUID
    product_id: int
    qty: int
    status: str
    expires_at: datetime
    customer_id: str | None
    order_id: uuid.UUID | None
    client_id: str = ""


@dataclass(frozen=True)
class Convert:
    """The hold is live: convert it and insert the order."""


@dataclass(frozen=True)
class Refuse:
    reason: OrderRefusalReason
    order_id: uuid.UUID | None = None


def decide_conversion(
    hold: HoldView | None, now: datetime, client_id: str = ""
) -> Convert | Refuse:
    """Exactly one order per hold, and only from an active hold before its `expires_at`.

    A hold belongs to the storefront that made it: to any other it does not exist.
    """
    if hold is None or hold.client_id != client_id:
        return Refuse("hold_not_found")
    if hold.status == "converted":
        return Refuse("hold_already_used", hold.order_id)
    if not hold_is_live(hold.status, hold.expires_at, now):
        return Refuse("hold_expired")
    return Convert()


@dataclass(frozen=True)
class PendingEvent:
    idempotency_key: str
    status: Literal["success", "failed"]
    amount_cents: int | None = None


PendingResult = Literal["applied", "ignored", "rejected"]


@dataclass(frozen=True)
class Settlement:
    """What the payments received before the order mean for it."""

    order_status: Literal["pending", "paid"]
    release: bool  # a failed payment: cancel through the inventory partition
    results: dict[str, PendingResult]


def settle_pending(events: Sequence[PendingEvent], order_cents: int) -> Settlement:
    """The first event received that counts decides (paid or cancelled); later ones: ignored.

    A success for another amount than the order's never pays it: it is rejected, and does not
    count, exactly as on the path where the order already exists.
    """
    results: dict[str, PendingResult] = {}
    first: PendingEvent | None = None
    for e in events:
        if e.status == "success" and not amount_matches(e.amount_cents, order_cents):
            results[e.idempotency_key] = "rejected"
        elif first is None:
            first = e
            results[e.idempotency_key] = "applied"
        else:
            results[e.idempotency_key] = "ignored"
    if first is None:
        return Settlement("pending", False, results)
    if first.status == "success":
        return Settlement("paid", False, results)
    return Settlement("pending", True, results)
