"""CreateOrder: turn an active hold into an order, exactly once."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.messages.base import Command

PaymentMethod = Literal["online", "cash_on_delivery"]


class CreateOrder(Command):
    """Convert the hold (active and unexpired) and insert the order in one transaction."""

    type: Literal["CreateOrder"] = "CreateOrder"
    order_id: uuid.UUID = Field(description="Fixed by the requester before sending.")
    hold_id: uuid.UUID
    payment_method: PaymentMethod = "online"
    client_id: str = Field(default="", description="The storefront asking ('' without keys).")
    idempotency_key: str | None = None
    request_hash: str | None = None
