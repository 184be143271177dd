"""Reads (and the few plain inserts) the gateway and the CLI make: no stock decision here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import holds, orders, products

PRODUCT_COLUMNS = (
    products.c.id,
    products.c.name,
    products.c.price_cents,
    products.c.stock_total,
    products.c.available,
    products.c.max_per_customer,
    products.c.sale_starts_at,
    products.c.sale_ends_at,
    products.c.version,
)
MAX_BIGINT = 2**63 - 1


async def get_product(conn: AsyncConnection, product_id: int) -> dict[str, Any] | None:
    """One product as the API shows it, or None."""
    if not 0 < product_id <= MAX_BIGINT:
        return None
    row = (await conn.execute(select(*PRODUCT_COLUMNS).where(products.c.id == product_id))).first()
    return dict(row._mapping) if row else None


async def list_products(conn: AsyncConnection, limit: int, offset: int) -> list[dict[str, Any]]:
    """Products by id."""
    rows = await conn.execute(
        select(*PRODUCT_COLUMNS).order_by(products.c.id).limit(limit).offset(offset)
    )
    return [dict(r._mapping) for r in rows]


async def insert_product(
    conn: AsyncConnection,
    *,
    name: str,
    price_cents: int,
    stock: int,
    max_per_customer: int | None = None,
    sale_starts_at: datetime | None = None,
    sale_ends_at: datetime | None = None,
) -> dict[str, Any]:
    """A new product with all its stock available (no one else can write it yet)."""
    row = (
        await conn.execute(
            insert(products)
            .values(
                name=name,
                price_cents=price_cents,
                stock_total=stock,
                available=stock,
                max_per_customer=max_per_customer,
                sale_starts_at=sale_starts_at,
                sale_ends_at=sale_ends_at,
            )
            .returning(*PRODUCT_COLUMNS)
        )
    ).one()
    return dict(row._mapping)


async def product_names(conn: AsyncConnection) -> set[str]:
    """Names of every product (seeding skips the ones present)."""
    return set((await conn.execute(select(products.c.name))).scalars())


async def count_products(conn: AsyncConnection) -> int:
    """How many products exist."""
    return int((await conn.execute(select(func.count()).select_from(products))).scalar_one())


HOLD_COLUMNS = (
    holds.c.id.label("hold_id"),
    holds.c.product_id,
    holds.c.qty,
    holds.c.status,
    holds.c.expires_at,
    holds.c.order_id,
    holds.c.customer_id,
    holds.c.idempotency_key,
    holds.c.request_hash,
)


async def get_hold(
    conn: AsyncConnection, hold_id: uuid.UUID, client_id: str = ""
) -> dict[str, Any] | None:
    """One hold of this storefront with its stored status (callers apply `expires_at`)."""
    row = (
        await conn.execute(
            select(*HOLD_COLUMNS).where(holds.c.id == hold_id, holds.c.client_id == client_id)
        )
    ).first()
    return dict(row._mapping) if row else None


async def get_hold_by_key(conn: AsyncConnection, client_id: str, key: str) -> dict[str, Any] | None:
    """The hold this storefront made with this Idempotency-Key, if any."""
    row = (
        await conn.execute(
            select(*HOLD_COLUMNS).where(
                holds.c.client_id == client_id, holds.c.idempotency_key == key
            )
        )
    ).first()
    return dict(row._mapping) if row else None


ORDER_COLUMNS = (
    orders.c.id.label("order_id"),
    orders.c.hold_id,
    orders.c.product_id,
    orders.c.qty,
    orders.c.amount_cents,
    orders.c.status,
    orders.c.payment_method,
    orders.c.created_at,
    orders.c.updated_at,
    orders.c.idempotency_key,
    orders.c.request_hash,
)


async def get_order(
    conn: AsyncConnection, order_id: uuid.UUID, client_id: str = ""
) -> dict[str, Any] | None:
    """One order of this storefront, or None."""
    row = (
        await conn.execute(
            select(*ORDER_COLUMNS).where(orders.c.id == order_id, orders.c.client_id == client_id)
        )
    ).first()
    return dict(row._mapping) if row else None


async def get_order_by_key(
    conn: AsyncConnection, client_id: str, key: str
) -> dict[str, Any] | None:
    """The order this storefront made with this Idempotency-Key, if any."""
    row = (
        await conn.execute(
            select(*ORDER_COLUMNS).where(
                orders.c.client_id == client_id, orders.c.idempotency_key == key
            )
        )
    ).first()
    return dict(row._mapping) if row else None
