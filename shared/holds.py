"""The rules about holds that more than one process applies: pure, standard library only."""

from __future__ import annotations

from datetime import datetime


def hold_is_live(status: str, expires_at: datetime, now: datetime) -> bool:
    """Active and before its `expires_at`: the only hold that can still become an order.

    An active hold past `expires_at` counts as expired everywhere, even before its expiry
    message has arrived and its status has been changed.
    """
    return status == "active" and now < expires_at


def on_sale(starts_at: datetime | None, ends_at: datetime | None, now: datetime) -> bool:
    """Inside the sale window (an open end means no limit on that side): a hold can be placed.

    The inventory partition decides by it; a gateway refuses from its stock levels only when it
    holds (otherwise the partition's answer would be `sale_not_active`, not sold out).
    """
    return (starts_at is None or starts_at <= now) and (ends_at is None or now < ends_at)
