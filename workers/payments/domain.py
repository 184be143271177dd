"""Pure rules of the payment state machine: pending → paid | cancelled; both terminal."""

from __future__ import annotations

from typing import Literal

from shared.payments import AMOUNT_MISMATCH, amount_matches

__all__ = ["AMOUNT_MISMATCH", "Action", "decide_payment", "result_of_release"]

Action = Literal["pending_order", "mark_paid", "release", "ignored", "rejected"]


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
