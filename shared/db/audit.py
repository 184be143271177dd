"""Stock conservation per product: the invariant `flashsale audit` checks and `stats` shows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import holds, orders, products


@dataclass(frozen=True)
class ProductLedger:
    product_id: int
    name: str
    stock_total: int
    available: int
    held: int
    sold: int
    refused: int

    @property
    def conserved(self) -> bool:
        """stock_total = available + active holds + pending/paid orders, available >= 0."""
        return self.available >= 0 and self.stock_total == self.available + self.held + self.sold


async def ledgers(conn: AsyncConnection) -> list[ProductLedger]:
    """One ledger per product, read in one snapshot (repeatable read)."""
    await conn.execute(select(1))  # starts the transaction the caller configured
    held = (
        select(holds.c.product_id, func.sum(holds.c.qty).label("qty"))
        .where(holds.c.status == "active")
        .group_by(holds.c.product_id)
        .subquery()
    )
    sold = (
        select(orders.c.product_id, func.sum(orders.c.qty).label("qty"))
        .where(orders.c.status.in_(("pending", "paid")))
        .group_by(orders.c.product_id)
        .subquery()
    )
    rows = await conn.execute(
        select(
            products.c.id,
            products.c.name,
            products.c.stock_total,
            products.c.available,
            func.coalesce(held.c.qty, 0),
            func.coalesce(sold.c.qty, 0),
            products.c.holds_refused,
        )
        .outerjoin(held, held.c.product_id == products.c.id)
        .outerjoin(sold, sold.c.product_id == products.c.id)
        .order_by(products.c.id)
    )
    return [ProductLedger(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6])) for r in rows]
