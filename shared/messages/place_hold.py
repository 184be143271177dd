"""PlaceHold: reserve units of a product for a short time."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.messages.base import Command


class PlaceHold(Command):
    """Take `qty` units out of `available` for one hold, if the sale and limits allow it."""

    type: Literal["PlaceHold"] = "PlaceHold"
    hold_id: uuid.UUID = Field(description="Fixed by the requester; a replay finds the same hold.")
    product_id: int = Field(examples=[1])
    qty: int = Field(ge=1, examples=[1])
    customer_id: str | None = Field(default=None, max_length=64, examples=["customer-42"])
    client_id: str = Field(default="", description="The storefront asking ('' without keys).")
    idempotency_key: str | None = Field(default=None, description="Client's Idempotency-Key.")
    request_hash: str | None = Field(default=None, description="Hash of the request body.")
