"""Products: a new product, a restock, a product page and its availability."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field, model_validator

from gateway.schemas.common import MAX_PRICE_CENTS, MAX_STOCK, SaleTime, Strict


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
