"""Holds: units of one product kept for a shopper until they expire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gateway.schemas.common import HOLD_ID_EXAMPLE, MAX_BIGINT, Strict

#: An opaque customer token: ASCII letters, digits and `._:@-`, so that no invisible or
#: lookalike character can make one shopper into two.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"


class HoldIn(Strict):
    """Units of one product to hold for a shopper until the hold expires."""

    product_id: int = Field(
        ge=1, le=MAX_BIGINT, strict=True, description="The product to hold.", examples=[1]
    )
    qty: int = Field(
        ge=1,
        strict=True,
        description="Units to hold: at most FLASHSALE_MAX_QTY_PER_HOLD (10 by default); more "
        'is a 422. An integer: true, 1.0 and "1" are refused.',
        json_schema_extra={"x-maximum-setting": "FLASHSALE_MAX_QTY_PER_HOLD"},
        examples=[1],
    )
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=CUSTOMER_ID_PATTERN,
        description="The shopper, as the storefront names them (required by a product with "
        "max_per_customer): 1–64 of A–Z a–z 0–9 . _ : @ -",
        examples=["customer-42"],
    )


class HoldOut(BaseModel):
    """A hold: units kept for a shopper until `expires_at`, unless it becomes an order."""

    hold_id: uuid.UUID = Field(description="The hold's opaque id.", examples=[HOLD_ID_EXAMPLE])
    product_id: int = Field(description="The product held.", examples=[1])
    qty: int = Field(description="Units held.", examples=[1])
    status: Literal["active", "converted", "expired"] = Field(
        description="`active` until it becomes an order (`converted`) or its time is up "
        "(`expired`: its units are back in stock).",
        examples=["active"],
    )
    expires_at: datetime = Field(
        description="An active hold past this instant is expired; order before then.",
        examples=["2030-11-21T10:02:00Z"],
    )
    order_id: uuid.UUID | None = Field(
        default=None,
        description="The order the hold became (`converted`); null otherwise.",
        examples=[None],
    )
