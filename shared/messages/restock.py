"""Restock: add units to a product's stock."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.messages.base import Command


class Restock(Command):
    """Add `add` units to both `stock_total` and `available`, in the product's partition."""

    type: Literal["Restock"] = "Restock"
    product_id: int = Field(examples=[1])
    add: int = Field(gt=0, examples=[50])
