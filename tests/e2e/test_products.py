"""Products over HTTP: admin create, public read, precise errors that change nothing."""

from __future__ import annotations

import httpx
import pytest

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


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": "ok", "database": "ok"}
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/products", "/api/holds", "/api/orders", "/api/payments/webhook"} <= set(paths)
    assert (await client.get("/docs")).status_code == 200


async def test_a_restock_past_the_stock_limit_is_422(client: httpx.AsyncClient) -> None:
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
