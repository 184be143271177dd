"""ReleaseOrderStock / ExpireOrder: cancel a pending order and return its units."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.messages.base import Command


class ReleaseOrderStock(Command):
    """Cancel a pending order after a failed payment and return its units to `available`."""

    type: Literal["ReleaseOrderStock"] = "ReleaseOrderStock"
    order_id: uuid.UUID
    product_id: int = Field(examples=[1])
    payment_key: str | None = Field(
        default=None, description="Idempotency key of the payment event that failed."
    )


class ExpireOrder(Command):
    """Dead-lettered from `orders.delay.<ttl>s`: cancel the order if it is still unpaid."""

    type: Literal["ExpireOrder"] = "ExpireOrder"
    order_id: uuid.UUID
    product_id: int = Field(examples=[1])
