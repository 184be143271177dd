"""StockLevels: what a partition's products have available, after a commit (fanout event)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.messages.base import Message


class Level(BaseModel):
    """One product's availability and what decides a hold before stock does."""

    available: int
    stock_total: int | None = None
    version: int | None = Field(
        default=None,
        description="Committed changes of the product's stock so far: a larger one is newer.",
    )
    on_sale_from: datetime | None = None
    on_sale_until: datetime | None = None
    limited: bool = Field(default=False, description="Has max_per_customer.")


class StockLevels(Message):
    """Published by the partition's consumer after each committed batch, to every gateway.

    Gateways keep the newest level per product and answer sold out without a round trip; a
    level never makes them refuse what the partition would grant for longer than its delivery.
    """

    type: Literal["StockLevels"] = "StockLevels"
    partition: str
    levels: dict[int, Level]
