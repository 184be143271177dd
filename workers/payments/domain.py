"""Pure rules of the payment state machine: pending → paid | cancelled; both terminal."""

from __future__ import annotations

from typing import Literal

Action = Literal["pending_order", "mark_paid", "release", "ignored"]


def decide_payment(
    order_status: str | None,
    hold_can_still_convert: bool,
    outcome: Literal["success", "failed"],
    failure_applied: bool = False,
) -> Action:
    """What a payment event does to its order.

    No order yet: keep the event until the order appears (or ignore it when its hold can never
    become one). A pending order is paid or cancelled; a terminal order stays as it is. A
    pending order whose failed payment is already applied (its release is on the way through
    the partition) is as good as cancelled: a later event is ignored.
    """
    if order_status is None:
        return "pending_order" if hold_can_still_convert else "ignored"
    if order_status != "pending" or failure_applied:
        return "ignored"
    return "mark_paid" if outcome == "success" else "release"


def result_of_release(order_status: str | None, cancelled_by: str | None, key: str) -> str:
    """A failed payment is `applied` if it (now or on an earlier try) cancelled the order."""
    if order_status == "cancelled" and cancelled_by == f"payment:{key}":
        return "applied"
    return "ignored"
