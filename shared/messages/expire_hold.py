"""ExpireHold: return a hold's units if it is still active past its expiry."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.messages.base import Message


class ExpireHold(Message):
    """Dead-lettered from `holds.delay.<ttl>s` (or re-issued by the sweep) into the partition."""

    type: Literal["ExpireHold"] = "ExpireHold"
    hold_id: uuid.UUID
    product_id: int = Field(examples=[1])
