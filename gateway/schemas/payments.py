"""Payments: a provider's signed event, and what became of it."""

from __future__ import annotations

import uuid
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from gateway.schemas.common import HOLD_ID_EXAMPLE, MAX_BIGINT, ORDER_ID_EXAMPLE, Strict


class WebhookIn(Strict):
    """A payment provider's event: the payment of one order (or of the order of one hold)
    succeeded or failed. Exactly one of `order_id` and `hold_id`."""

    idempotency_key: str = Field(
        min_length=1,
        max_length=200,
        description="The provider's id of this event: a resend with the same key and body is "
        "answered `duplicate`; the same key with another body is a 409.",
        examples=["evt_1Q2w3E4r5T6y"],
    )
    order_id: uuid.UUID | None = Field(
        default=None, description="The order paid for.", examples=[ORDER_ID_EXAMPLE]
    )
    hold_id: uuid.UUID | None = Field(
        default=None,
        description="Instead of `order_id`: the hold the storefront started the payment "
        "with (the event applies to the order made from it, once there is one).",
        examples=[HOLD_ID_EXAMPLE],
    )
    status: Literal["success", "failed"] = Field(
        description="`success` pays the order; `failed` cancels it and returns its units.",
        examples=["success"],
    )
    amount_cents: int | None = Field(
        default=None,
        ge=0,
        le=MAX_BIGINT,
        strict=True,
        description="What the provider charged, in cents: a success pays the order only when "
        "this is the order's `amount_cents` (else `rejected`, reason `amount_mismatch`).",
        examples=[12900],
    )
    provider_reference: str | None = Field(
        default=None,
        max_length=200,
        description="The provider's own reference of the payment, kept with the event.",
        examples=["pi_3Nk2Lm"],
    )

    @model_validator(mode="after")
    def _exactly_one_reference(self) -> Self:
        if (self.order_id is None) == (self.hold_id is None):
            raise ValueError("give exactly one of order_id and hold_id")
        return self


class WebhookOut(BaseModel):
    """What became of a payment event."""

    idempotency_key: str = Field(
        description="The event's `idempotency_key`.", examples=["evt_1Q2w3E4r5T6y"]
    )
    result: str = Field(
        description="applied, duplicate, ignored, rejected (not applied: see `reason`), "
        "pending_order or queued",
        examples=["applied"],
    )
    reason: str | None = Field(
        default=None,
        description="Why a `rejected` event did not apply: `amount_mismatch` when "
        "`amount_cents` is not the order's amount (the order stays pending).",
        examples=["amount_mismatch"],
    )
    order_id: uuid.UUID | None = Field(
        default=None,
        description="The order the event applies to (null while it is not known).",
        examples=[ORDER_ID_EXAMPLE],
    )
    order_status: str | None = Field(
        default=None,
        description="The order's status after the event: pending, paid or cancelled.",
        examples=["paid"],
    )
