"""Baseline: lock per request (FastAPI + asyncpg), the classic design; its product read is the
plain one (one indexed `SELECT` per request).

`uvicorn tests.bench.lock_app:app --workers 2` with BENCH_DSN (a plain postgresql:// URL) and
BENCH_SCHEMA set. Each hold is one transaction: `SELECT … FOR UPDATE` on the product row,
insert the hold, update `available`, commit; 409 when sold out. Its tables live in a schema of
their own on the project's PostgreSQL server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

HOLD_TTL = timedelta(hours=1)
POOL_SIZE = 10


def schema_sql(schema: str) -> str:
    """The baseline's own tables (dropped and made anew)."""
    return f"""
    DROP SCHEMA IF EXISTS {schema} CASCADE;
    CREATE SCHEMA {schema};
    CREATE TABLE {schema}.products (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL DEFAULT 'bench product',
        price_cents bigint NOT NULL DEFAULT 100,
        stock_total integer NOT NULL,
        available integer NOT NULL CHECK (available >= 0)
    );
    CREATE TABLE {schema}.holds (
        id uuid PRIMARY KEY,
        product_id bigint NOT NULL REFERENCES {schema}.products (id),
        qty integer NOT NULL CHECK (qty > 0),
        status text NOT NULL DEFAULT 'active',
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ON {schema}.holds (expires_at) WHERE status = 'active';
    """


class HoldIn(BaseModel):
    product_id: int = Field(ge=1)
    qty: int = Field(ge=1, le=10)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    schema = os.environ["BENCH_SCHEMA"]
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_DSN"],
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        server_settings={"search_path": schema},
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/api/holds", status_code=201)
async def place_hold(body: HoldIn) -> JSONResponse:
    """Lock the product row, check, insert the hold, decrement, commit."""
    hold_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + HOLD_TTL
    async with app.state.pool.acquire() as conn, conn.transaction():
        available = await conn.fetchval(
            "SELECT available FROM products WHERE id = $1 FOR UPDATE", body.product_id
        )
        if available is None:
            return JSONResponse({"code": "product_not_found"}, status_code=404)
        if available < body.qty:
            return JSONResponse(
                {"code": "insufficient_stock", "available": available}, status_code=409
            )
        await conn.execute(
            "INSERT INTO holds (id, product_id, qty, expires_at) VALUES ($1, $2, $3, $4)",
            hold_id,
            body.product_id,
            body.qty,
            expires_at,
        )
        await conn.execute(
            "UPDATE products SET available = available - $2 WHERE id = $1",
            body.product_id,
            body.qty,
        )
    return JSONResponse(
        {
            "id": str(hold_id),
            "product_id": body.product_id,
            "qty": body.qty,
            "expires_at": expires_at.isoformat(),
        },
        status_code=201,
    )


@app.get("/api/products/{product_id}")
async def get_product(product_id: int) -> JSONResponse:
    """One indexed SELECT on the pool."""
    async with app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, name, price_cents, stock_total, available FROM products WHERE id = $1",
            product_id,
        )
    if row is None:
        return JSONResponse({"code": "product_not_found"}, status_code=404)
    return JSONResponse(dict(row))
