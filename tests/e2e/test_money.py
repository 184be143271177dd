"""Money is reconciled: a success pays an order only with the order's own amount."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import payment_events
from tests.helpers import assert_stock_conserved, make_product, post_webhook

pytestmark = pytest.mark.e2e


def _key() -> str:
    return f"psp-{uuid.uuid4()}"


async def _pending_order(client: httpx.AsyncClient, price: int, qty: int = 1) -> dict[str, Any]:
    product = await make_product(client, stock=5, price_cents=price)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": qty})).json()
    r = await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    assert order["status"] == "pending" and order["amount_cents"] == price * qty
    return order


async def _stored(engine: AsyncEngine, key: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(payment_events).where(payment_events.c.idempotency_key == key)
            )
        ).one()


async def test_a_1_cent_success_on_a_10000_cent_order_is_rejected_and_the_order_stays_pending(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    order = await _pending_order(client, price=10_000)
    key = _key()
    body = {"idempotency_key": key, "order_id": order["order_id"], "status": "success"}
    r = await post_webhook(client, {**body, "amount_cents": 1})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "rejected" and r.json()["reason"] == "amount_mismatch"
    assert r.json()["order_status"] == "pending"
    got = (await client.get(f"/api/orders/{order['order_id']}")).json()
    assert got["status"] == "pending"
    stored = await _stored(engine, key)
    assert (stored.result, stored.reason) == ("rejected", "amount_mismatch")
    again = await post_webhook(client, {**body, "amount_cents": 1})
    assert again.json()["result"] == "duplicate" and again.json()["order_status"] == "pending"


async def test_after_a_rejected_amount_the_right_amount_still_pays_the_order(
    client: httpx.AsyncClient,
) -> None:
    order = await _pending_order(client, price=2_500, qty=2)
    ref = {"order_id": order["order_id"], "status": "success"}
    wrong = await post_webhook(client, {"idempotency_key": _key(), **ref, "amount_cents": 2_500})
    assert wrong.json()["result"] == "rejected"
    right = await post_webhook(client, {"idempotency_key": _key(), **ref, "amount_cents": 5_000})
    assert right.json()["result"] == "applied" and right.json()["order_status"] == "paid"


async def test_a_larger_amount_does_not_pay_either(client: httpx.AsyncClient) -> None:
    order = await _pending_order(client, price=100)
    r = await post_webhook(
        client,
        {
            "idempotency_key": _key(),
            "order_id": order["order_id"],
            "status": "success",
            "amount_cents": 101,
        },
    )
    assert r.json()["result"] == "rejected"
    assert (await client.get(f"/api/orders/{order['order_id']}")).json()["status"] == "pending"


async def test_a_1_cent_success_before_the_order_leaves_the_15000_cent_order_pending(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5, price_cents=15_000)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
    key = _key()
    early = await post_webhook(
        client,
        {
            "idempotency_key": key,
            "hold_id": hold["hold_id"],
            "status": "success",
            "amount_cents": 1,
        },
    )
    assert early.status_code == 202 and early.json()["result"] == "pending_order"
    r = await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"  # not paid by the early 1-cent event
    stored = await _stored(engine, key)
    assert (stored.result, stored.reason) == ("rejected", "amount_mismatch")
    paid = await post_webhook(
        client,
        {
            "idempotency_key": _key(),
            "order_id": r.json()["order_id"],
            "status": "success",
            "amount_cents": 15_000,
        },
    )
    assert paid.json()["result"] == "applied" and paid.json()["order_status"] == "paid"
    await assert_stock_conserved(engine, product["id"])


async def test_an_early_exact_amount_still_pays_the_order_when_it_appears(
    client: httpx.AsyncClient,
) -> None:
    product = await make_product(client, stock=5, price_cents=700)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 2})).json()
    early = await post_webhook(
        client,
        {
            "idempotency_key": _key(),
            "hold_id": hold["hold_id"],
            "status": "success",
            "amount_cents": 1_400,
        },
    )
    assert early.json()["result"] == "pending_order"
    r = await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    assert r.status_code == 201 and r.json()["status"] == "paid"
