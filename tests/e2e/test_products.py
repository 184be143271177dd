"""Products over HTTP: admin create, public read, precise errors that change nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import queries
from tests.helpers import ADMIN, assert_problem, make_product

pytestmark = pytest.mark.e2e


async def test_admin_creates_a_product_and_anyone_reads_it(client: httpx.AsyncClient) -> None:
    created = await make_product(client, stock=7, max_per_customer=2)
    assert created["stock_total"] == created["available"] == 7
    r = await client.get(f"/api/products/{created['id']}")
    assert r.status_code == 200 and r.json() == created
    listing = (await client.get("/api/products", params={"limit": 1000})).json()
    assert created["id"] in {p["id"] for p in listing}


@pytest.mark.parametrize("product_id", ["999999999", "9223372036854775807", "99999999999999999999"])
async def test_unknown_product_is_a_404_problem(client: httpx.AsyncClient, product_id: str) -> None:
    r = await client.get(f"/api/products/{product_id}")
    assert_problem(r, 404, "product_not_found")  # beyond bigint too: no such product


async def test_non_numeric_product_id_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/products/abc"), 422, "validation_error")


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}]
)
async def test_admin_endpoints_refuse_without_the_token_and_create_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, headers: dict[str, str]
) -> None:
    async with engine.connect() as conn:
        before = await queries.count_products(conn)
    r = await client.post(
        "/api/admin/products", json={"name": "x", "price_cents": 1, "stock": 1}, headers=headers
    )
    assert_problem(r, 401, "unauthorized")
    async with engine.connect() as conn:
        assert await queries.count_products(conn) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "price_cents": 1, "stock": 1},
        {"name": "x", "price_cents": -1, "stock": 1},
        {"name": "x", "price_cents": 1, "stock": -1},
        {"name": "x", "price_cents": 1},
        {"name": "x", "price_cents": 1, "stock": 1, "colour": "red"},
        {"name": "x", "price_cents": 1, "stock": 1, "max_per_customer": 0},
        {
            "name": "x",
            "price_cents": 1,
            "stock": 1,
            "sale_starts_at": "2026-01-02T00:00:00Z",
            "sale_ends_at": "2026-01-01T00:00:00Z",
        },
        {"name": "x", "price_cents": 1, "stock": 1, "sale_starts_at": "2026-01-02T00:00:00"},
        {"name": "x", "price_cents": "lots", "stock": 1},
    ],
)
async def test_bad_product_bodies_are_422_and_create_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, object]
) -> None:
    async with engine.connect() as conn:
        before = await queries.count_products(conn)
    assert_problem(
        await client.post("/api/admin/products", json=body, headers=ADMIN), 422, "validation_error"
    )
    async with engine.connect() as conn:
        assert await queries.count_products(conn) == before


async def test_malformed_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/admin/products",
        content=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation_error")


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/nothing-here"), 404, "not_found")


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": "ok", "database": "ok"}
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/products", "/api/holds", "/api/orders", "/api/payments/webhook"} <= set(paths)
    assert (await client.get("/docs")).status_code == 200


async def test_text_with_nul_and_out_of_range_numbers_are_422(client: httpx.AsyncClient) -> None:
    bad_name = {"name": "a\u0000b", "price_cents": 1, "stock": 1}
    assert_problem(
        await client.post("/api/admin/products", json=bad_name, headers=ADMIN),
        422,
        "validation_error",
    )
    pricey = {"name": "x", "price_cents": 10**15, "stock": 1}
    assert_problem(
        await client.post("/api/admin/products", json=pricey, headers=ADMIN),
        422,
        "validation_error",
    )
    assert_problem(
        await client.get("/api/products", params={"offset": 3_000_000_000}), 422, "validation_error"
    )
    product = await make_product(client, stock=2**31 - 10)
    r = await client.post(
        f"/api/admin/products/{product['id']}/restock", json={"add": 100}, headers=ADMIN
    )
    assert_problem(r, 422, "validation_error")


async def test_a_restock_retried_with_its_idempotency_key_adds_once(
    client: httpx.AsyncClient,
) -> None:
    product = await make_product(client, stock=3)
    path = f"/api/admin/products/{product['id']}/restock"
    headers = {**ADMIN, "Idempotency-Key": f"restock-{product['id']}"}
    first = await client.post(path, json={"add": 4}, headers=headers)
    again = await client.post(path, json={"add": 4}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["stock_total"] == 7 and again.json()["available"] == 7
