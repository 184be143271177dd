"""Holds over HTTP against real processes: no oversell under parallel load, expiry by RabbitMQ."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import holds
from tests.harness import System, wait_for
from tests.helpers import (
    ADMIN,
    assert_problem,
    assert_stock_conserved,
    count_holds,
    insert_hold_without_its_message,
    make_product,
)

pytestmark = pytest.mark.e2e


async def _hold(
    client: httpx.AsyncClient, product_id: int, qty: int = 1, **kw: object
) -> httpx.Response:
    return await client.post("/api/holds", json={"product_id": product_id, "qty": qty, **kw})


async def test_200_parallel_holds_on_stock_10_give_exactly_10(
    client: httpx.AsyncClient, engine: AsyncEngine, system: System
) -> None:
    product = await make_product(client, stock=10)
    started = time.monotonic()
    answers = await asyncio.gather(*[_hold(client, product["id"]) for _ in range(200)])
    took = time.monotonic() - started
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {201, 409}, codes
    assert all(r.json()["code"] == "insufficient_stock" for r in answers if r.status_code == 409)
    await assert_stock_conserved(engine, product["id"])
    expired = await count_holds(engine, product["id"], "expired")
    if expired:
        # A machine so busy that the 200 answers took longer than a hold lasts (5 s here)
        # sells the units that came back again, never more than 10 at once (conserved above).
        assert took > float(system.env()["FLASHSALE_HOLD_TTL_SECONDS"]), (took, expired)
        assert codes.count(201) == expired + await count_holds(engine, product["id"], "active")
        return
    assert codes.count(201) == 10 and codes.count(409) == 190, codes
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 0
    assert await count_holds(engine, product["id"], "active") == 10


async def test_five_parallel_holds_of_3_on_stock_10_never_oversell(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=10)
    answers = await asyncio.gather(*[_hold(client, product["id"], 3) for _ in range(5)])
    won = sum(r.status_code == 201 for r in answers)
    assert won <= 3
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == 10 - 3 * won


_RACER = """
import sys, time, httpx
url, product, at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, at - time.time()))
r = httpx.post(url + "/api/holds", json={"product_id": product, "qty": 1}, timeout=30)
print(r.status_code)
"""


async def test_last_unit_raced_by_two_os_processes_goes_to_exactly_one(
    client: httpx.AsyncClient, system: System, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=1)
    at = time.time() + 1.5  # both processes fire at the same instant
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACER,
            system.base_url,
            str(product["id"]),
            str(at),
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [int((await p.communicate())[0].decode().strip()) for p in racers]
    assert sorted(outputs) == [201, 409]
    assert await count_holds(engine, product["id"]) == 1
    await assert_stock_conserved(engine, product["id"])


async def test_availability_is_read_your_writes_after_a_hold(client: httpx.AsyncClient) -> None:
    product = await make_product(client, stock=5)
    for expected in (4, 2):
        r = await _hold(client, product["id"], 1 if expected == 4 else 2)
        assert r.status_code == 201
        got = (await client.get(f"/api/products/{product['id']}")).json()["available"]
        assert got == expected


async def test_hold_expires_by_its_delay_queue_and_the_units_come_back(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=3)
    r = await _hold(client, product["id"], 2)
    assert r.status_code == 201
    hold = r.json()
    assert hold["status"] == "active"
    expires_at = datetime.fromisoformat(hold["expires_at"])

    async def expired_in_db() -> bool:
        async with engine.connect() as conn:
            status = (
                await conn.execute(
                    select(holds.c.status).where(holds.c.id == uuid.UUID(hold["hold_id"]))
                )
            ).scalar_one()
        return bool(status == "expired")

    await wait_for(expired_in_db, timeout=20)
    assert datetime.now(UTC) <= expires_at + timedelta(seconds=2)
    got = (await client.get(f"/api/holds/{hold['hold_id']}")).json()
    assert got["status"] == "expired"
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 3
    await assert_stock_conserved(engine, product["id"])


async def test_hold_past_expires_at_reads_as_expired_before_its_message(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=3)
    hold_id = await insert_hold_without_its_message(
        engine, product["id"], 1, expired_for=timedelta(milliseconds=100)
    )
    assert (await client.get(f"/api/holds/{hold_id}")).json()["status"] == "expired"


async def test_unknown_product_sale_window_and_customer_limit_are_409_or_404(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert_problem(await _hold(client, 10**12), 404, "product_not_found")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    upcoming = await make_product(client, stock=5, sale_starts_at=later)
    assert_problem(await _hold(client, upcoming["id"]), 409, "sale_not_active")
    ended = await make_product(
        client,
        stock=5,
        sale_starts_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        sale_ends_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    )
    assert_problem(await _hold(client, ended["id"]), 409, "sale_not_active")
    limited = await make_product(client, stock=10, max_per_customer=2)
    assert (await _hold(client, limited["id"], 2, customer_id="c-1")).status_code == 201
    assert_problem(
        await _hold(client, limited["id"], 1, customer_id="c-1"), 409, "customer_limit_exceeded"
    )
    assert (await _hold(client, limited["id"], 2, customer_id="c-2")).status_code == 201
    for p in (upcoming, ended):
        assert await count_holds(engine, p["id"]) == 0
    await assert_stock_conserved(engine, limited["id"])


async def test_parallel_holds_of_one_customer_respect_the_limit(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=50, max_per_customer=3)
    answers = await asyncio.gather(
        *[_hold(client, product["id"], 1, customer_id="greedy") for _ in range(20)]
    )
    assert sum(r.status_code == 201 for r in answers) == 3
    assert await count_holds(engine, product["id"]) == 3


async def test_insufficient_stock_says_how_many_are_available(client: httpx.AsyncClient) -> None:
    product = await make_product(client, stock=2)
    body = assert_problem(await _hold(client, product["id"], 3), 409, "insufficient_stock")
    assert body["available"] == 2


async def test_get_unknown_or_malformed_hold_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/api/holds/{uuid.uuid4()}"), 404, "hold_not_found")
    assert_problem(await client.get("/api/holds/not-a-uuid"), 404, "hold_not_found")


async def test_idempotency_key_replays_the_same_hold_and_refuses_another_body(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=10)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"product_id": product["id"], "qty": 2}
    first = await client.post("/api/holds", json=body, headers=key)
    again = await client.post("/api/holds", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["hold_id"] == again.json()["hold_id"]
    parallel = await asyncio.gather(
        *[client.post("/api/holds", json=body, headers=key) for _ in range(10)]
    )
    assert {r.json()["hold_id"] for r in parallel} == {first.json()["hold_id"]}
    other = await client.post("/api/holds", json={**body, "qty": 3}, headers=key)
    assert_problem(other, 409, "idempotency_key_reused")
    assert await count_holds(engine, product["id"]) == 1
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == 8


async def test_restock_goes_through_the_partition_and_needs_the_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=1)
    assert (await _hold(client, product["id"])).status_code == 201
    path = f"/api/admin/products/{product['id']}/restock"
    assert_problem(await client.post(path, json={"add": 5}), 401, "unauthorized")
    assert_problem(await client.post(path, json={"add": 0}, headers=ADMIN), 422, "validation_error")
    assert_problem(
        await client.post("/api/admin/products/999999999/restock", json={"add": 1}, headers=ADMIN),
        404,
        "product_not_found",
    )
    r = await client.post(path, json={"add": 5}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["stock_total"], r.json()["available"]) == (6, 5)
    await assert_stock_conserved(engine, product["id"])
