"""Orders over HTTP: a live hold becomes exactly one order; an expired one never does."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import holds, orders, products
from tests.harness import wait_for
from tests.helpers import assert_problem, assert_stock_conserved, make_product, stock_ledger

pytestmark = pytest.mark.e2e


async def _hold(client: httpx.AsyncClient, product_id: int, qty: int = 1) -> dict[str, Any]:
    r = await client.post("/api/holds", json={"product_id": product_id, "qty": qty})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_live_hold_becomes_a_pending_order(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5, price_cents=1250)
    hold = await _hold(client, product["id"], 2)
    r = await client.post(
        "/api/orders", json={"hold_id": hold["hold_id"], "payment_method": "cash_on_delivery"}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending" and order["amount_cents"] == 2500
    assert (order["hold_id"], order["qty"], order["payment_method"]) == (
        hold["hold_id"],
        2,
        "cash_on_delivery",
    )
    got = (await client.get(f"/api/orders/{order['order_id']}")).json()
    assert got["order_id"] == order["order_id"] and got["created_at"] and got["updated_at"]
    converted = (await client.get(f"/api/holds/{hold['hold_id']}")).json()
    assert converted["status"] == "converted" and converted["order_id"] == order["order_id"]
    ledger = await assert_stock_conserved(engine, product["id"])
    assert (ledger["available"], ledger["ordered"], ledger["held"]) == (3, 2, 0)


async def test_the_same_hold_used_twice_in_parallel_gives_exactly_one_order(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5)
    hold = await _hold(client, product["id"])
    answers = await asyncio.gather(
        *[client.post("/api/orders", json={"hold_id": hold["hold_id"]}) for _ in range(10)]
    )
    created = [r for r in answers if r.status_code == 201]
    assert len(created) == 1
    for r in answers:
        if r.status_code != 201:
            body = assert_problem(r, 409, "hold_already_used")
            assert body["order_id"] == created[0].json()["order_id"]
    async with engine.connect() as conn:
        n = (
            await conn.execute(
                select(func.count()).select_from(orders).where(orders.c.product_id == product["id"])
            )
        ).scalar_one()
    assert n == 1


async def test_an_expired_hold_cannot_become_an_order_even_before_its_message(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5)
    hold = await _hold(client, product["id"])
    async with engine.begin() as conn:  # its expires_at has passed; its message is not due yet
        await conn.execute(
            update(holds)
            .where(holds.c.id == uuid.UUID(hold["hold_id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(milliseconds=200))
        )
    r = await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    assert_problem(r, 409, "hold_expired")
    assert (await client.get(f"/api/holds/{hold['hold_id']}")).json()["status"] == "expired"


async def test_an_expired_hold_after_its_message_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5)
    hold = await _hold(client, product["id"])

    async def expired() -> bool:
        return bool(
            (await client.get(f"/api/holds/{hold['hold_id']}")).json()["status"] == "expired"
        )

    await wait_for(expired, timeout=15)
    assert_problem(
        await client.post("/api/orders", json={"hold_id": hold["hold_id"]}), 409, "hold_expired"
    )
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["ordered"] == 0


async def test_unknown_hold_is_404(client: httpx.AsyncClient) -> None:
    hold_id = str(uuid.uuid4())
    assert_problem(
        await client.post("/api/orders", json={"hold_id": hold_id}), 404, "hold_not_found"
    )
    assert_problem(await client.get(f"/api/orders/{hold_id}"), 404, "order_not_found")


async def test_idempotency_key_on_orders(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    product = await make_product(client, stock=5)
    hold = await _hold(client, product["id"])
    key = {"Idempotency-Key": f"o-{uuid.uuid4()}"}
    body = {"hold_id": hold["hold_id"]}
    first = await client.post("/api/orders", json=body, headers=key)
    again = await client.post("/api/orders", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["order_id"] == again.json()["order_id"]
    other = await client.post(
        "/api/orders", json={**body, "payment_method": "cash_on_delivery"}, headers=key
    )
    assert_problem(other, 409, "idempotency_key_reused")


async def test_an_unpaid_online_order_is_cancelled_after_the_payment_window(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=4)
    hold = await _hold(client, product["id"], 3)
    order = (await client.post("/api/orders", json={"hold_id": hold["hold_id"]})).json()
    cod_hold = await _hold(client, product["id"], 1)
    cod = (
        await client.post(
            "/api/orders",
            json={"hold_id": cod_hold["hold_id"], "payment_method": "cash_on_delivery"},
        )
    ).json()
    assert (await stock_ledger(engine, product["id"]))["available"] == 0

    async def cancelled() -> bool:
        r = await client.get(f"/api/orders/{order['order_id']}")
        return bool(r.json()["status"] == "cancelled")

    await wait_for(cancelled, timeout=20)  # window is 6 s in the test system
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 3
    assert (await client.get(f"/api/orders/{cod['order_id']}")).json()["status"] == "pending"
    async with engine.connect() as conn:
        reason = (
            await conn.execute(
                select(orders.c.cancel_reason).where(orders.c.id == uuid.UUID(order["order_id"]))
            )
        ).scalar_one()
        total = (
            await conn.execute(select(products.c.stock_total).where(products.c.id == product["id"]))
        ).scalar_one()
    assert reason == "payment_window_elapsed" and total == 4
    await assert_stock_conserved(engine, product["id"])
