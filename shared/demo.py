"""Demo products for a development system; seeding twice adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import queries

#: name, price in cents, stock, max per customer
DEMO_PRODUCTS: list[tuple[str, int, int, int | None]] = [
    ("Limited sneaker 'Midnight'", 12900, 100, 2),
    ("Console bundle", 49900, 25, 1),
    ("Vinyl box set", 8900, 200, 3),
    ("Signed jersey", 15900, 50, 1),
    ("Mechanical keyboard", 11900, 150, 2),
    ("Concert ticket, front row", 9900, 40, 4),
    ("Espresso machine", 34900, 30, 1),
    ("Collector's figurine", 4900, 500, 5),
    ("Noise-cancelling headphones", 27900, 80, 2),
    ("Designer backpack", 18900, 60, 2),
]

_SEED_LOCK = 727_274_101  # one seeder at a time


async def seed(engine: AsyncEngine) -> int:
    """Insert the demo products that are not there yet; return how many were added."""
    added = 0
    async with engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(_SEED_LOCK)))
        present = await queries.product_names(conn)
        for name, price, stock, limit in DEMO_PRODUCTS:
            if name in present:
                continue
            await queries.insert_product(
                conn, name=name, price_cents=price, stock=stock, max_per_customer=limit
            )
            added += 1
    return added
