"""Fault matrix, input: an empty Idempotency-Key, a boolean qty, a sale date in year 1 or given
as a number, and a product whose stored data cannot be decided, each under steady load."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topology
from shared.db.tables import message_failures
from tests.fault.load import SteadyLoad, assert_nothing_lost_doubled_oversold_or_stuck
from tests.harness import System
from tests.helpers import ADMIN, assert_problem, count_holds, make_product

pytestmark = pytest.mark.fault


@pytest.fixture
async def steady(client: httpx.AsyncClient, system: System) -> AsyncIterator[SteadyLoad]:
    """Shoppers on a product of their own while a test misbehaves."""
    product = await make_product(client, stock=1_000_000)
    async with SteadyLoad(system.base_url, product["id"], shoppers=3) as load:
        await load.serving()  # a cold gateway's first answers may take a while
        yield load


OldData = Callable[..., Coroutine[Any, Any, None]]


@pytest.fixture
async def old_data(engine: AsyncEngine) -> AsyncIterator[OldData]:
    """Store what an old gateway let in (raw SQL: `old_data(product_id, sale_ends_at='-infinity')`)
    and put the products' sale dates back afterwards, so that no later test of the session (the
    OpenAPI contract run picks existing products) meets data the gateway no longer accepts."""
    saved: list[tuple[int, object, object]] = []

    async def store(product_id: int, **dates: str) -> None:
        assert set(dates) <= {"sale_starts_at", "sale_ends_at"}
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text("SELECT sale_starts_at, sale_ends_at FROM products WHERE id = :id"),
                    {"id": product_id},
                )
            ).one()
            saved.append((product_id, row.sale_starts_at, row.sale_ends_at))
            assignments = ", ".join(
                f"{column} = CAST(CAST(:{column} AS text) AS timestamptz)" for column in dates
            )
            await conn.execute(
                text(f"UPDATE products SET {assignments} WHERE id = :id"),  # noqa: S608
                {"id": product_id, **dates},
            )

    try:
        yield store
    finally:
        async with engine.begin() as conn:
            for product_id, starts, ends in reversed(saved):
                await conn.execute(
                    text(
                        "UPDATE products SET sale_starts_at = :s, sale_ends_at = :e WHERE id = :id"
                    ),
                    {"id": product_id, "s": starts, "e": ends},
                )


async def _assert_load_survived(load: SteadyLoad, engine: AsyncEngine) -> None:
    assert load.holds, "the steady load placed holds"
    assert not load.failures(), load.failures()[:3]
    load.assert_honest_answers()


async def test_an_empty_idempotency_key_is_refused_and_poisons_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, steady: SteadyLoad
) -> None:
    product = await make_product(client, stock=5)
    empty = {"Idempotency-Key": ""}
    for _ in range(2):  # the second used to hit the unique constraint in the partition
        r = await client.post(
            "/api/holds", json={"product_id": product["id"], "qty": 1}, headers=empty
        )
        body = assert_problem(r, 422, "validation_error")
        assert "Idempotency-Key" in body["detail"]
    assert await count_holds(engine, product["id"]) == 0
    started = time.monotonic()
    hold = await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
    assert hold.status_code == 201 and time.monotonic() - started < 2.0  # the partition decides
    order = await client.post(
        "/api/orders", json={"hold_id": hold.json()["hold_id"]}, headers=empty
    )
    assert_problem(order, 422, "validation_error")
    assert (await client.get(f"/api/holds/{hold.json()['hold_id']}")).json()["status"] == "active"
    await _assert_load_survived(steady, engine)
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, steady)


@pytest.mark.parametrize(
    "body",
    [{"qty": True}, {"qty": 1.0}, {"qty": "1"}, {"product_id": True}],
    ids=["qty-true", "qty-float", "qty-text", "product-true"],
)
async def test_booleans_floats_and_text_are_not_integers(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, object]
) -> None:
    product = await make_product(client, stock=5)
    r = await client.post("/api/holds", json={"product_id": product["id"], "qty": 1, **body})
    assert_problem(r, 422, "validation_error")
    assert await count_holds(engine, product["id"]) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sale_ends_at", "0001-01-01T00:00:00Z"),
        ("sale_starts_at", -2.44e-126),
        ("sale_starts_at", 1_700_000_000),
        ("sale_starts_at", "2026-11-21T10:00:00"),  # no timezone
        ("sale_ends_at", "2101-01-01T00:00:00Z"),
        ("sale_ends_at", "1999-12-31T23:59:59Z"),
    ],
)
async def test_a_sale_date_is_text_with_a_timezone_within_sane_years(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    name = f"bad-date-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "price_cents": 100, "stock": 1, field: value}
    r = await client.post("/api/admin/products", json=body, headers=ADMIN)
    problem = assert_problem(r, 422, "validation_error")
    assert field in problem["detail"]
    listed = (await client.get("/api/products")).json()
    assert all(p["name"] != name for p in listed)


async def test_a_product_its_data_cannot_decide_is_refused_at_once_not_retried(
    client: httpx.AsyncClient, engine: AsyncEngine, steady: SteadyLoad, old_data: OldData
) -> None:
    product = await make_product(client, stock=5)
    await old_data(product["id"], sale_ends_at="-infinity")  # an old gateway's year 1
    started = time.monotonic()
    r = await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
    elapsed = time.monotonic() - started
    problem = assert_problem(r, 503, "product_unavailable")
    assert r.headers["Retry-After"] and "not placed" in problem["detail"]
    assert elapsed < 2.0, f"refused after {elapsed:.1f} s"  # not retried until the deadline
    assert await count_holds(engine, product["id"]) == 0
    async with engine.connect() as conn:
        errors = (
            (
                await conn.execute(
                    select(message_failures.c.error).where(
                        message_failures.c.queue == topology.product_routing_key(product["id"], 8),
                        message_failures.c.message_type == "PlaceHold",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert any("Error" in e for e in errors), "the reason is recorded for the operator"
    await _assert_load_survived(steady, engine)  # its partition's neighbours are decided
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, steady)


async def test_a_product_whose_stored_sale_dates_are_infinite_is_shown_not_a_500(
    client: httpx.AsyncClient, engine: AsyncEngine, old_data: OldData
) -> None:
    """asyncpg reads a stored -infinity/infinity as a naive datetime.min/max: the product list
    (one such product in a page made the whole page 500), its page from the database, and its
    page from the snapshot (written by the server itself, where the error became a 400 "not
    valid HTTP/1.1") all show it, with year 1 and year 9999."""
    ended = await make_product(client, stock=3)
    endless = await make_product(client, stock=3)
    await old_data(ended["id"], sale_starts_at="-infinity", sale_ends_at="-infinity")
    await old_data(endless["id"], sale_ends_at="infinity")
    expected = {
        ended["id"]: ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        endless["id"]: (endless["sale_starts_at"], "9999-12-31T23:59:59.999999Z"),
    }

    def dates(product: dict[str, object]) -> tuple[object, object]:
        return product["sale_starts_at"], product["sale_ends_at"]

    for exact in ("true", "false"):
        listed: dict[object, tuple[object, object]] = {}
        for offset in range(0, 1_000_000, 1000):  # every page of the list, each a 200
            r = await client.get(f"/api/products?offset={offset}&limit=1000&consistent={exact}")
            assert r.status_code == 200, r.text
            if not r.json():
                break
            listed |= {p["id"]: dates(p) for p in r.json()}
        assert {i: listed.get(i) for i in expected} == expected
    for product_id, want in expected.items():
        page = f"/api/products/{product_id}"
        r = await client.get(f"{page}?consistent=true")
        assert r.status_code == 200, r.text
        assert dates(r.json()) == want
        # the read put the row in this process's snapshot: the next page is written at once
        deadline = time.monotonic() + 10
        while True:
            r = await client.get(page)
            assert r.status_code == 200, r.text
            assert dates(r.json()) == want
            if r.headers.get("cache-status") == "flashsale-gateway; hit":
                break
            assert time.monotonic() < deadline, "the page never came from the snapshot"
            await asyncio.sleep(0.05)
    r = await client.post("/api/holds", json={"product_id": ended["id"], "qty": 1})
    assert_problem(r, 503, "product_unavailable")  # holds: as the test above says
    assert await count_holds(engine, ended["id"]) == 0
