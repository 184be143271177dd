"""The hold-expiry rule of the design, in one place: pure, standard library only."""

from __future__ import annotations

from datetime import datetime


def hold_is_live(status: str, expires_at: datetime, now: datetime) -> bool:
    """Active and before its `expires_at`: the only hold that can still become an order.

    An active hold past `expires_at` counts as expired everywhere, even before its expiry
    message has arrived and its status has been changed.
    """
    return status == "active" and now < expires_at
