"""Pure rules of the payment state machine: pending → paid | cancelled; both terminal.

The handler records the event under its key, then `seen_before` says whether it is new, a
duplicate or a reused key; under the order's (or hold's) lock it loads a `PaymentState`, and
`decide` says what the event does to the order. The handler applies that with conditional SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from shared.messages import RecordPayment
from shared.payments import AMOUNT_MISMATCH, amount_matches

__all__ = [
    "AMOUNT_MISMATCH",
    "Action",
    "EventView",
    "OrderView",
    "PaymentState",
    "decide",
    "decide_payment",
    "result_of_release",
    "seen_before",
]

Action = Literal["pending_order", "mark_paid", "release", "ignored", "rejected", "applied_again"]
#: Results that end an event's story: its later deliveries are duplicates.
FINAL = ("applied", "ignored", "rejected")


@dataclass(frozen=True)
class EventView:
    """A payment event stored under its key already."""

    payload_hash: str
    result: str | None
    reason: str | None


@dataclass(frozen=True)
class OrderView:
    """The order an event is about, as the database has it."""

    order_id: uuid.UUID
    product_id: int
    status: Literal["pending", "paid", "cancelled"]
    amount_cents: int
    cancelled_by: str | None


@dataclass(frozen=True)
class PaymentState:
    """What `decide` may look at, loaded under the order's (or the hold's) lock."""

    order: OrderView | None
    #: no order yet: whether its hold may still become one
    hold_can_still_convert: bool = True
    #: a failed payment of this order is applied already (its release may be on the way)
    failure_applied: bool = False


def seen_before(
    payload_hash: str, stored: EventView | None
) -> Literal["new", "key_reused", "duplicate", "resume"]:
    """An event by a key stored already: the same body is a duplicate once its story has
    ended, or resumes where an earlier try stopped; another body under that key is refused."""
    if stored is None:
        return "new"
    if stored.payload_hash != payload_hash:
        return "key_reused"
    return "duplicate" if stored.result in FINAL else "resume"


def decide(cmd: RecordPayment, state: PaymentState) -> Action:
    """What this event does to its order (see `decide_payment`); an order this very event
    cancelled already (another delivery got there first) gets the same result again."""
    order = state.order
    if order is not None and order.cancelled_by == f"payment:{cmd.idempotency_key}":
        return "applied_again"
    return decide_payment(
        order.status if order is not None else None,
        state.hold_can_still_convert,
        cmd.status,
        state.failure_applied,
        paid_cents=cmd.amount_cents,
        order_cents=order.amount_cents if order is not None else None,
    )


def decide_payment(
    order_status: str | None,
    hold_can_still_convert: bool,
    outcome: Literal["success", "failed"],
    failure_applied: bool = False,
    *,
    paid_cents: int | None = None,
    order_cents: int | None = None,
) -> Action:
    """What a payment event does to its order.

    No order yet: keep the event until the order appears (or ignore it when its hold can never
    become one). A pending order is paid (only by its exact amount: another amount is
    rejected and the order stays pending) or cancelled; a terminal order stays as it is. A
    pending order whose failed payment is already applied (its release is on the way through
    the partition) is as good as cancelled: a later event is ignored.
    """
    if order_status is None:
        return "pending_order" if hold_can_still_convert else "ignored"
    if order_status != "pending" or failure_applied:
        return "ignored"
    if outcome == "failed":
        return "release"
    assert order_cents is not None, "a known order has an amount"
    return "mark_paid" if amount_matches(paid_cents, order_cents) else "rejected"


def result_of_release(order_status: str | None, cancelled_by: str | None, key: str) -> str:
    """A failed payment is `applied` if it (now or on an earlier try) cancelled the order."""
    if order_status == "cancelled" and cancelled_by == f"payment:{key}":
        return "applied"
    return "ignored"
