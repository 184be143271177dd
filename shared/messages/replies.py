"""Replies and events the workers send back: past tense, one model per outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from shared.messages.base import Message
from shared.messages.stock_levels import Level

HoldRefusalReason = Literal[
    "product_not_found",
    "insufficient_stock",
    "sale_not_active",
    "customer_limit_exceeded",
    "customer_id_required",
    "idempotency_key_reused",
    # the product's stored data cannot be decided on (e.g. a sale date out of range): refused
    # at once, recorded for the operator, never retried
    "product_undecidable",
]


class HoldPlaced(Message):
    """A hold exists (now or from an earlier delivery of the same command)."""

    type: Literal["HoldPlaced"] = "HoldPlaced"
    hold_id: uuid.UUID
    product_id: int
    qty: int
    status: Literal["active", "converted", "expired"] = "active"
    expires_at: datetime
    available: int = Field(description="Units still available after this hold.")


class HoldRefused(Message):
    """No hold was placed; nothing changed."""

    type: Literal["HoldRefused"] = "HoldRefused"
    reason: HoldRefusalReason
    available: int | None = None


HoldReply = Annotated[HoldPlaced | HoldRefused, Field(discriminator="type")]


class HoldsDecided(Message):
    """Reply to PlaceHolds: one entry per hold, in order; None where no decision was made
    (dropped past its deadline, or its handling failed): the requester answers 503."""

    type: Literal["HoldsDecided"] = "HoldsDecided"
    replies: list[HoldReply | None]
    levels: dict[int, Level] = Field(
        default_factory=dict,
        description="The envelope's products after the commits that decided it: the gateway "
        "that answers these holds reads them back at once.",
    )


class StockChanged(Message):
    """Reply to a restock or a release: the product's stock afterwards."""

    type: Literal["StockChanged"] = "StockChanged"
    product_id: int
    stock_total: int | None = None
    available: int | None = None
    found: bool = True


class OrderCancelled(Message):
    """Reply to a release: the order's status afterwards and whether this command cancelled it."""

    type: Literal["OrderCancelled"] = "OrderCancelled"
    order_id: uuid.UUID
    order_status: Literal["pending", "paid", "cancelled"] | None
    cancelled_now: bool
    cancel_reason: str | None = None


class OrderCreated(Message):
    """An order exists for the hold (now or from an earlier delivery)."""

    type: Literal["OrderCreated"] = "OrderCreated"
    order_id: uuid.UUID
    hold_id: uuid.UUID
    product_id: int
    qty: int
    amount_cents: int
    status: Literal["pending", "paid", "cancelled"]
    payment_method: Literal["online", "cash_on_delivery"]


OrderRefusalReason = Literal[
    "hold_not_found", "hold_expired", "hold_already_used", "idempotency_key_reused"
]


class OrderRefused(Message):
    """No order was created; nothing changed."""

    type: Literal["OrderRefused"] = "OrderRefused"
    reason: OrderRefusalReason
    order_id: uuid.UUID | None = Field(default=None, description="The existing order, if used.")


OrderReply = Annotated[OrderCreated | OrderRefused, Field(discriminator="type")]

PaymentResult = Literal[
    "applied", "duplicate", "ignored", "pending_order", "key_reused", "rejected"
]


class PaymentRecorded(Message):
    """What the payments worker did with a webhook."""

    type: Literal["PaymentRecorded"] = "PaymentRecorded"
    idempotency_key: str
    result: PaymentResult
    reason: str | None = Field(
        default=None,
        description="Why a `rejected` event did not apply.",
        examples=["amount_mismatch"],
    )
    order_id: uuid.UUID | None = None
    order_status: Literal["pending", "paid", "cancelled"] | None = None
    product_id: int | None = Field(default=None, description="The order's product, if known.")
