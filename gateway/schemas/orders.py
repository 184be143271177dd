"""Orders: a hold turned into an order, and the order as it stands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gateway.schemas.common import HOLD_ID_EXAMPLE, ORDER_ID_EXAMPLE, Strict


class OrderIn(Strict):
    """Turn an active hold into an order."""

    hold_id: str = Field(
        min_length=1,
        max_length=100,
        description="The hold to order, as `POST /api/holds` gave it (an id that is no hold "
        "of this storefront is a 404 `hold_not_found`).",
        examples=[HOLD_ID_EXAMPLE],
    )
    payment_method: Literal["online", "cash_on_delivery"] = Field(
        default="online",
        description="`online`: the payment provider's webhook pays or cancels the order, "
        "which is cancelled unpaid after the payment window; `cash_on_delivery`: it stays "
        "pending until paid.",
        examples=["online"],
    )


class OrderOut(BaseModel):
    """An order and its payment status."""

    order_id: uuid.UUID = Field(description="The order's opaque id.", examples=[ORDER_ID_EXAMPLE])
    hold_id: uuid.UUID = Field(description="The hold it was made from.", examples=[HOLD_ID_EXAMPLE])
    product_id: int = Field(description="The product ordered.", examples=[1])
    qty: int = Field(description="Units ordered.", examples=[1])
    amount_cents: int = Field(
        description="What the order costs: qty × the product's price, in cents.",
        examples=[12900],
    )
    status: Literal["pending", "paid", "cancelled"] = Field(
        description="`pending` until paid (`paid`) or cancelled (`cancelled`: a failed "
        "payment or the payment window passed; its units are back in stock).",
        examples=["pending"],
    )
    payment_method: Literal["online", "cash_on_delivery"] = Field(
        description="How the order is paid.", examples=["online"]
    )
    created_at: datetime | None = Field(
        default=None, description="When the order was made.", examples=["2030-11-21T10:00:30Z"]
    )
    updated_at: datetime | None = Field(
        default=None,
        description="When its status last changed.",
        examples=["2030-11-21T10:00:30Z"],
    )


class OrderProcessing(BaseModel):
    """202: the command is queued and will be decided, as this order or as a refusal (the
    hold expired or was used meanwhile); GET the order (404 until it exists), or repeat the
    request with the same Idempotency-Key to learn the decision."""

    order_id: uuid.UUID = Field(
        description="The order's id, if it is made: GET it, or repeat the request.",
        examples=[ORDER_ID_EXAMPLE],
    )
    status: Literal["processing"] = Field(
        default="processing", description="Always `processing`.", examples=["processing"]
    )
