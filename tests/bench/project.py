"""This project under load: its processes (the tests' System), products, history rows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.tables import holds
from tests.harness import System
from tests.helpers import ADMIN
from tests.servers import ServerSet

#: Hold TTL when expiries must not come back during the bench (the expiry scenario sets its own).
LONG_TTL_SECONDS = 3600
#: Stock of a product that will not sell out during a run.
BOTTOMLESS = 100_000_000


def start(
    servers: ServerSet,
    ttl_seconds: int,
    inventory_workers: int,
    gateways: int,
    settings: dict[str, str] | None = None,
) -> System:
    """The project's gateway and worker processes, as the tests start them, with the
    deployment's least-privilege roles, and `settings` (FLASHSALE_* names) over the defaults."""
    return System.on(
        servers,
        workers={"inventory": inventory_workers, "orders": 1, "payments": 1},
        gateways=gateways,
        overrides={**(settings or {}), "FLASHSALE_HOLD_TTL_SECONDS": str(ttl_seconds)},
    ).start()


async def _products(base_url: str, stock: int, count: int) -> list[int]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=ADMIN) as client:

        async def one() -> int:
            body = {"name": f"bench-{uuid.uuid4().hex[:10]}", "price_cents": 100, "stock": stock}
            async with limit:
                r = await client.post("/api/admin/products", json=body)
            r.raise_for_status()
            return int(r.json()["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


def products(base_url: str, stock: int, count: int = 1) -> list[int]:
    """`count` fresh products through the admin API."""
    return asyncio.run(_products(base_url, stock, count))


#: Past holds that hold no stock. Their ids are in insertion order (a random one per row costs
#: a third more time to insert); the processes' own holds keep their random ids.
_HISTORY = text(
    """
    INSERT INTO holds (id, product_id, qty, status, expires_at, created_at, updated_at)
    SELECT (lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
           :product_id, 1, 'expired', t, t, t
    FROM (
        SELECT n, now() - interval '1 day' + n * interval '1 millisecond' AS t
        FROM generate_series(1, CAST(:rows AS integer)) AS n
    ) AS s
    """
)


async def _history(database_url: str, product_id: int, at_least: int) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            have = (await conn.execute(select(func.count()).select_from(holds))).scalar_one()
            if have < at_least:
                await conn.execute(_HISTORY, {"product_id": product_id, "rows": at_least - have})
        async with engine.connect() as conn:
            # as autovacuum would soon after: statistics and the visibility map of the new rows
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text("VACUUM ANALYZE holds")
            )
            return int((await conn.execute(select(func.count()).select_from(holds))).scalar_one())
    finally:
        await engine.dispose()


def history(database_url: str, product_id: int, at_least: int) -> int:
    """Past holds (expired, no stock held) until the table has `at_least` rows; the count."""
    return asyncio.run(_history(database_url, product_id, at_least))


async def _expired_between(
    database_url: str, product_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    engine = create_async_engine(database_url)
    late = func.extract("epoch", holds.c.updated_at - holds.c.expires_at) * 1000
    try:
        async with engine.connect() as conn:
            query = select(
                func.count(),
                func.percentile_cont(0.5).within_group(late),
                func.percentile_cont(0.99).within_group(late),
                func.max(late),
            ).where(
                holds.c.product_id == product_id,
                holds.c.status == "expired",
                holds.c.updated_at.between(start, end),
            )
            n, p50, p99, worst = (await conn.execute(query)).one()
    finally:
        await engine.dispose()
    ms = [None if v is None else round(float(v), 1) for v in (p50, p99, worst)]
    return {
        "expired_in_window": int(n),
        "expiry_late_ms": dict(zip(("p50", "p99", "max"), ms, strict=True)),
    }


def expired_between(
    database_url: str, product_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """How many of the product's holds expired between `start` and `end`, and how late after
    their `expires_at` (ms)."""
    return asyncio.run(_expired_between(database_url, product_id, start, end))


async def _active(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).where(holds.c.status == "active")
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def active_holds(database_url: str) -> int:
    """Holds still active (their expiry has not come back yet)."""
    return asyncio.run(_active(database_url))
