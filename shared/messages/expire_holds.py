"""ExpireHolds: the expiry of every hold one committed batch placed, as one message."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.messages.base import Message
from shared.messages.expire_hold import ExpireHold


class ExpireHolds(Message):
    """Published after the commit to `holds.delay.<ttl>s`; comes back as one, decided as one."""

    type: Literal["ExpireHolds"] = "ExpireHolds"
    holds: list[ExpireHold] = Field(min_length=1, max_length=10_000)
