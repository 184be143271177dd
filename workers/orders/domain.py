"""Pure rules of turning a hold into an order and settling payments that came first.

`decide(cmd, state, now, payment_window)` reads what the handler loaded (in the transaction,
under the hold's and the order's locks) and says what to do: answer an order that exists again
(OrderReplayed), refuse (OrderRefused), or create the order (OrderCreated), named as the replies
and the HTTP contract name them (docs/glossary.md). The handler applies it with conditional SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.holds import hold_is_live
from shared.messages import CreateOrder
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
class OrderView:
    """An order as the database has it."""

    order_id: uuid.UUID
    hold_id: uuid.UUID
    product_id: int
    qty: int
    amount_cents: int
    status: Literal["pending", "paid", "cancelled"]
    payment_method: Literal["online", "cash_on_delivery"]
    pay_by: datetime | None
    request_hash: str | None


@dataclass(frozen=True)
class Convertible:
    """The hold is live and the storefront's: it may be converted into an order."""


@dataclass(frozen=True)
class OrderRefused:
    """No order; nothing changes (the reply OrderRefused, the HTTP answer's code)."""

    reason: OrderRefusalReason
    order_id: uuid.UUID | None = None


def decide_conversion(
    hold: HoldView | None, now: datetime, client_id: str = ""
) -> Convertible | OrderRefused:
    """Exactly one order per hold, and only from an active hold before its `expires_at`.

    A hold belongs to the storefront that made it: to any other it does not exist.
    """
    if hold is None or hold.client_id != client_id:
        return OrderRefused("hold_not_found")
    if hold.status == "converted":
        return OrderRefused("hold_already_used", hold.order_id)
    if not hold_is_live(hold.status, hold.expires_at, now):
        return OrderRefused("hold_expired")
    return Convertible()


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


@dataclass(frozen=True)
class OrderState:
    """What `decide` may look at, loaded under the hold's and the order's locks."""

    #: the order this command made already (by its id, or by its Idempotency-Key)
    existing: OrderView | None = None
    #: for an existing pending order: the key of a failed payment already applied to it
    failed_key: str | None = None
    hold: HoldView | None = None
    price_cents: int | None = None
    #: payments received before the order, oldest first
    pending: list[PendingEvent] = field(default_factory=list)


@dataclass(frozen=True)
class OrderReplayed:
    """The order exists: answer it again and redo its follow-ups (all idempotent)."""

    order: OrderView
    pay_by: datetime | None
    release_key: str | None


@dataclass(frozen=True)
class OrderCreated:
    """Convert the hold and insert the order, settling the payments that came first."""

    hold: HoldView
    amount_cents: int
    settlement: Settlement
    #: when an online order is cancelled unpaid (None: cash on delivery)
    pay_by: datetime | None

    @property
    def release_key(self) -> str | None:
        """A payment that failed before the order: it cancels the order once created."""
        if not self.settlement.release:
            return None
        return next((k for k, r in self.settlement.results.items() if r == "applied"), None)

    @property
    def rejected(self) -> list[str]:
        return [k for k, r in self.settlement.results.items() if r == "rejected"]


def decide(
    cmd: CreateOrder, state: OrderState, now: datetime, payment_window: timedelta
) -> OrderReplayed | OrderRefused | OrderCreated:
    """Exactly one order per hold: an order this command made is answered again (the same
    key with another request is refused); else the hold must be live and the storefront's."""
    existing = state.existing
    if existing is not None:
        if existing.hold_id != cmd.hold_id or (
            cmd.idempotency_key and existing.request_hash != cmd.request_hash
        ):
            return OrderRefused("idempotency_key_reused", existing.order_id)
        pending = existing.status == "pending"
        return OrderReplayed(
            existing,
            existing.pay_by if pending else None,
            state.failed_key if pending else None,
        )
    conversion = decide_conversion(state.hold, now, cmd.client_id)
    if isinstance(conversion, OrderRefused):
        return conversion
    assert state.hold is not None and state.price_cents is not None
    amount = state.price_cents * state.hold.qty
    settlement = settle_pending(state.pending, amount)
    online = cmd.payment_method == "online"
    pay_by = now + payment_window if online else None
    return OrderCreated(state.hold, amount, settlement, pay_by)
