"""HTTP request and response bodies (the HTTP contract of DESIGN.md §4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_BIGINT = 2**63 - 1


MAX_STOCK = 2**31 - 1
#: price × the largest hold must fit the database's BIGINT amount
MAX_PRICE_CENTS = 10**12
#: Sale times outside these years are refused: no sale runs then, and the database's and
#: Python's ranges differ past them (year 1 becomes -infinity, unreadable back).
SALE_YEARS = (2000, 2100)


def _sale_time(value: object) -> object:
    """A sale time is ISO 8601 text: a number is not a date."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time with a timezone, e.g. 2026-11-21T10:00:00Z")
    return value


def _in_sale_years(value: datetime) -> datetime:
    first, last = SALE_YEARS
    if not first <= value.astimezone(UTC).year <= last:
        raise ValueError(f"must be within the years {first} to {last}")
    return value


SaleTime = Annotated[
    AwareDatetime,
    BeforeValidator(_sale_time),
    AfterValidator(_in_sale_years),
    Field(
        description=f"ISO 8601 with a timezone, within the years {SALE_YEARS[0]}–{SALE_YEARS[1]}",
        json_schema_extra={
            "formatMinimum": f"{SALE_YEARS[0]}-01-01T00:00:00Z",
            "formatMaximum": f"{SALE_YEARS[1]}-12-31T23:59:59Z",
        },
    ),
]


#: What the NUL rule of Strict looks like in a JSON Schema.
NO_NUL = "^[^\\u0000]*$"


def _no_nul_in_schema(schema: dict[str, Any]) -> None:
    """Every free text field of the schema says that it refuses NUL (Strict's rule)."""
    for prop in schema.get("properties", {}).values():
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string" and not {"pattern", "format", "enum"} & set(branch):
                branch["pattern"] = NO_NUL


class Strict(BaseModel):
    """Request bodies refuse unknown fields, and text the database cannot store (NUL)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_nul_in_schema)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


class ProductOut(BaseModel):
    """A product and its availability as of `as_of` (see the `Cache-Status` header for where
    the answer came from)."""

    id: int = Field(description="The product's id.", examples=[1])
    name: str = Field(description="What the storefront shows.", examples=["Limited sneaker"])
    price_cents: int = Field(description="Price of one unit, in cents.", examples=[12900])
    stock_total: int = Field(
        description="Units the product has ever had (created with, plus restocks).",
        examples=[100],
    )
    available: int = Field(
        description="Units neither held nor ordered: what a hold may still take.", examples=[42]
    )
    max_per_customer: int | None = Field(
        description="Most units one customer may hold and order (holds then need a "
        "`customer_id`); null: no limit.",
        examples=[2],
    )
    sale_starts_at: datetime | None = Field(
        description="Holds are refused before this instant; null: on sale from creation.",
        examples=["2030-11-21T10:00:00Z"],
    )
    sale_ends_at: datetime | None = Field(
        description="Holds are refused from this instant; null: no end.",
        examples=["2030-11-21T22:00:00Z"],
    )
    version: int = Field(
        description="Committed changes of this product's stock so far: a larger version is "
        "newer. The weak ETag of the answer.",
        examples=[42],
    )
    as_of: datetime = Field(
        description="`stock_total` and `available` were current at this instant (the "
        "database read, or when this gateway process last heard the product's level).",
        examples=["2030-11-21T10:00:01.250000Z"],
    )


class AvailabilityOut(BaseModel):
    """A product's availability: what a product page shows ("3 left", "sold out"), and the
    `data` of each event of its availability stream."""

    product_id: int = Field(description="The product's id.", examples=[1])
    available: int = Field(
        description="Units neither held nor ordered: what a hold may still take.", examples=[3]
    )
    stock_total: int = Field(
        description="Units the product has ever had (created with, plus restocks).",
        examples=[100],
    )
    sold_out: bool = Field(description="`available` is 0.", examples=[False])
    version: int = Field(
        description="Committed changes of this product's stock so far: a larger version is "
        "newer (the event's `id`).",
        examples=[97],
    )
    as_of: datetime = Field(
        description="The availability was current at this instant.",
        examples=["2030-11-21T10:00:01.250000Z"],
    )


class ProductIn(Strict):
    """A new product: all of its stock is available at once."""

    name: str = Field(
        min_length=1,
        max_length=200,
        description="What the storefront shows: 1–200 characters.",
        examples=["Limited sneaker"],
    )
    price_cents: int = Field(
        ge=0,
        le=MAX_PRICE_CENTS,
        strict=True,
        description="Price of one unit, in cents (an integer).",
        examples=[12900],
    )
    stock: int = Field(
        ge=0, le=MAX_STOCK, strict=True, description="Units to sell.", examples=[100]
    )
    max_per_customer: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        strict=True,
        description="Most units one customer may hold and order; holds then need a "
        "`customer_id`. Omitted or null: no limit.",
        examples=[2],
    )
    sale_starts_at: SaleTime | None = Field(
        default=None,
        description="Holds are refused before this instant; omitted: on sale at once.",
        examples=["2030-11-21T10:00:00Z"],
    )
    sale_ends_at: SaleTime | None = Field(
        default=None,
        description="Holds are refused from this instant (after `sale_starts_at`); "
        "omitted: no end.",
        examples=["2030-11-21T22:00:00Z"],
    )

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.sale_starts_at and self.sale_ends_at and self.sale_ends_at <= self.sale_starts_at:
            raise ValueError("sale_ends_at must be after sale_starts_at")
        return self


class RestockIn(Strict):
    """Units to add to a product's stock."""

    add: int = Field(
        gt=0,
        le=MAX_STOCK,
        strict=True,
        description=f"Units to add; the product's stock_total may not pass {MAX_STOCK} (422).",
        examples=[50],
    )


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


_HOLD_ID = "1f0c2a9e-6b3d-4c1e-9a57-2d8e4b6f0a13"
_ORDER_ID = "7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87"


class HoldOut(BaseModel):
    """A hold: units kept for a shopper until `expires_at`, unless it becomes an order."""

    hold_id: uuid.UUID = Field(description="The hold's opaque id.", examples=[_HOLD_ID])
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


class OrderIn(Strict):
    """Turn an active hold into an order."""

    hold_id: str = Field(
        min_length=1,
        max_length=100,
        description="The hold to order, as `POST /api/holds` gave it (an id that is no hold "
        "of this storefront is a 404 `hold_not_found`).",
        examples=[_HOLD_ID],
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

    order_id: uuid.UUID = Field(description="The order's opaque id.", examples=[_ORDER_ID])
    hold_id: uuid.UUID = Field(description="The hold it was made from.", examples=[_HOLD_ID])
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
        examples=[_ORDER_ID],
    )
    status: Literal["processing"] = Field(
        default="processing", description="Always `processing`.", examples=["processing"]
    )


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
        default=None, description="The order paid for.", examples=[_ORDER_ID]
    )
    hold_id: uuid.UUID | None = Field(
        default=None,
        description="Instead of `order_id`: the hold the storefront started the payment "
        "with (the event applies to the order made from it, once there is one).",
        examples=[_HOLD_ID],
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
        examples=[_ORDER_ID],
    )
    order_status: str | None = Field(
        default=None,
        description="The order's status after the event: pending, paid or cancelled.",
        examples=["paid"],
    )


class Health(BaseModel):
    """The process's health."""

    status: str = Field(description="`ok` (alive) or `ready`.", examples=["ready"])
    checks: dict[str, Any] = Field(
        default={},
        description="What readiness checked, each `ok` or why not.",
        examples=[{"broker": "ok", "database": "ok"}],
    )
