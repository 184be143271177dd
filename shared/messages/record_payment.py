"""RecordPayment: a verified payment-provider webhook."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from shared.messages.base import Command


class RecordPayment(Command):
    """Store the event under its idempotency key, then move the order along its state machine."""

    type: Literal["RecordPayment"] = "RecordPayment"
    idempotency_key: str = Field(max_length=200, examples=["evt_1QX..."])
    order_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None
    status: Literal["success", "failed"]
    amount_cents: int | None = None
    provider_reference: str | None = None
    payload: dict[str, Any] = Field(description="The webhook body as received.")
    payload_hash: str = Field(description="Hash of the canonical body, to spot a reused key.")
