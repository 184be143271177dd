"""Pure rules of turning a hold into an order and settling payments that came first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.holds import hold_is_live
from shared.messages.replies import OrderRefusalReason


@dataclass(frozen=True)
class HoldView:
    hold_id: uuid.UUID
    product_id: int
    qty: int
    status: str
    expires_at: datetime
    customer_id: str | None
    order_id: uuid.UUID | None


@dataclass(frozen=True)
class Convert:
    """The hold is live: convert it and insert the order."""


@dataclass(frozen=True)
class Refuse:
    reason: OrderRefusalReason
    order_id: uuid.UUID | None = None


def decide_conversion(hold: HoldView | None, now: datetime) -> Convert | Refuse:
    """Exactly one order per hold, and only from an active hold before its `expires_at`."""
    if hold is None:
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


@dataclass(frozen=True)
class Settlement:
    """What the payments received before the order mean for it."""

    order_status: Literal["pending", "paid"]
    release: bool  # a failed payment: cancel through the inventory partition
    results: dict[str, Literal["applied", "ignored"]]


def settle_pending(events: Sequence[PendingEvent]) -> Settlement:
    """The first event received decides (paid or cancelled); later contradicting ones: ignored."""
    if not events:
        return Settlement("pending", False, {})
    first, rest = events[0], events[1:]
    results: dict[str, Literal["applied", "ignored"]] = {first.idempotency_key: "applied"}
    results.update({e.idempotency_key: "ignored" for e in rest})
    if first.status == "success":
        return Settlement("paid", False, results)
    return Settlement("pending", True, results)
