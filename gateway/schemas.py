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
        examples=["2026-11-21T10:00:00Z"],
        json_schema_extra={
            "formatMinimum": f"{SALE_YEARS[0]}-01-01T00:00:00Z",
            "formatMaximum": f"{SALE_YEARS[1]}-12-31T23:59:59Z",
        },
    ),
]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, and text the database cannot store (NUL)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


class ProductOut(BaseModel):
    """A product and its availability as of `as_of` (see the `Cache-Status` header for where
    the answer came from)."""

    id: int
    name: str
    price_cents: int
    stock_total: int
    available: int
    max_per_customer: int | None
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    version: int = Field(
        description="Committed changes of this product's stock so far: a larger version is "
        "newer. The weak ETag of the answer.",
        examples=[42],
    )
    as_of: datetime = Field(
        description="`stock_total` and `available` were current at this instant (the "
        "database read, or when this gateway process last heard the product's level)."
    )


class ProductIn(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Limited sneaker"])
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS, strict=True, examples=[12900])
    stock: int = Field(ge=0, le=MAX_STOCK, strict=True, examples=[100])
    max_per_customer: int | None = Field(default=None, ge=1, le=2**31 - 1, strict=True)
    sale_starts_at: SaleTime | None = None
    sale_ends_at: SaleTime | None = None

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.sale_starts_at and self.sale_ends_at and self.sale_ends_at <= self.sale_starts_at:
            raise ValueError("sale_ends_at must be after sale_starts_at")
        return self


class RestockIn(Strict):
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
    product_id: int = Field(ge=1, le=MAX_BIGINT, strict=True, examples=[1])
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
    hold_id: uuid.UUID
    product_id: int
    qty: int
    status: Literal["active", "converted", "expired"]
    expires_at: datetime
    order_id: uuid.UUID | None = None


class OrderIn(Strict):
    hold_id: str = Field(min_length=1, max_length=100)
    payment_method: Literal["online", "cash_on_delivery"] = "online"


class OrderOut(BaseModel):
    order_id: uuid.UUID
    hold_id: uuid.UUID
    product_id: int
    qty: int
    amount_cents: int
    status: Literal["pending", "paid", "cancelled"]
    payment_method: Literal["online", "cash_on_delivery"]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class OrderProcessing(BaseModel):
    """202: the command is queued and will be decided, as this order or as a refusal (the
    hold expired or was used meanwhile); GET the order (404 until it exists), or repeat the
    request with the same Idempotency-Key to learn the decision."""

    order_id: uuid.UUID
    status: Literal["processing"] = "processing"


class WebhookIn(Strict):
    idempotency_key: str = Field(min_length=1, max_length=200)
    order_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None
    status: Literal["success", "failed"]
    amount_cents: int | None = Field(default=None, ge=0, le=MAX_BIGINT, strict=True)
    provider_reference: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _exactly_one_reference(self) -> Self:
        if (self.order_id is None) == (self.hold_id is None):
            raise ValueError("give exactly one of order_id and hold_id")
        return self


class WebhookOut(BaseModel):
    idempotency_key: str
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
    order_id: uuid.UUID | None = None
    order_status: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = {}
