"""Assertions and shortcuts the integration and end-to-end tests share."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import holds, orders, payment_events, products
from shared.signature import sign
from tests.harness import ADMIN_TOKEN, WEBHOOK_SECRETS

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def make_product(client: httpx.AsyncClient, stock: int = 10, **fields: Any) -> dict[str, Any]:
    """A new product of our own (unique name) through the admin API."""
    body = {"name": f"test-{uuid.uuid4().hex[:10]}", "price_cents": 1000, "stock": stock, **fields}
    r = await client.post("/api/admin/products", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def stock_ledger(engine: AsyncEngine, product_id: int) -> dict[str, int]:
    """stock_total, available, units in active holds, units in pending or paid orders.

    Read from one snapshot: an expiry committing between two statements must not show up in
    one and not the other.
    """
    async with engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="REPEATABLE READ")
        p = (await conn.execute(select(products).where(products.c.id == product_id))).one()
        held = (
            await conn.execute(
                select(func.coalesce(func.sum(holds.c.qty), 0)).where(
                    holds.c.product_id == product_id, holds.c.status == "active"
                )
            )
        ).scalar_one()
        sold = (
            await conn.execute(
                select(func.coalesce(func.sum(orders.c.qty), 0)).where(
                    orders.c.product_id == product_id, orders.c.status.in_(("pending", "paid"))
                )
            )
        ).scalar_one()
    return {
        "stock_total": p.stock_total,
        "available": p.available,
        "held": int(held),
        "ordered": int(sold),
    }


async def assert_stock_conserved(engine: AsyncEngine, product_id: int) -> dict[str, int]:
    """stock_total = available + active holds + pending/paid orders, and available >= 0."""
    ledger = await stock_ledger(engine, product_id)
    assert ledger["available"] >= 0, ledger
    assert ledger["stock_total"] == ledger["available"] + ledger["held"] + ledger["ordered"], ledger
    return ledger


async def insert_hold_without_its_message(
    engine: AsyncEngine, product_id: int, qty: int, expired_for: timedelta
) -> uuid.UUID:
    """A committed hold (its units taken) whose expiry message never went out or is not due."""
    hold_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            update(products)
            .where(products.c.id == product_id)
            .values(available=products.c.available - qty)
        )
        await conn.execute(
            holds.insert().values(
                id=hold_id,
                product_id=product_id,
                qty=qty,
                status="active",
                expires_at=datetime.now(UTC) - expired_for,
            )
        )
    return hold_id


async def count_holds(engine: AsyncEngine, product_id: int, status: str | None = None) -> int:
    where = [holds.c.product_id == product_id]
    if status:
        where.append(holds.c.status == status)
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(holds).where(*where))).scalar_one()
        )


async def count_payment_events(engine: AsyncEngine, key: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(payment_events)
                    .where(payment_events.c.idempotency_key == key)
                )
            ).scalar_one()
        )


def signed(
    body: dict[str, Any], secret: str = WEBHOOK_SECRETS[0], at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its headers, signed as a provider would."""
    raw = json.dumps(body).encode()
    header = sign(secret, raw, int(time.time()) if at is None else at)
    return raw, {"X-Signature": header, "Content-Type": "application/json"}


async def post_webhook(
    client: httpx.AsyncClient, body: dict[str, Any], **kw: Any
) -> httpx.Response:
    raw, headers = signed(body, **kw)
    return await client.post("/api/payments/webhook", content=raw, headers=headers)


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A problem+json answer with this status and code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status and body["title"] and body["type"] and body["detail"], body
    return body


def consumer_connection(consumer: dict[str, Any]) -> str | None:
    """The connection name of a consumer listed by the management API, or None while the stats
    of its channel are not (or no longer) known: the API then gives `channel_details: []`, as
    just after a node was killed. The caller asks again."""
    details = consumer.get("channel_details")
    return details.get("connection_name") if isinstance(details, dict) else None
