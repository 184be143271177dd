"""Storefronts are clients: their holds, orders and Idempotency-Keys are their own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.harness import System, isolated_system
from tests.helpers import assert_problem, make_product
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

KEY_A = "shop-a-key-" + "a" * 32
KEY_A_NEXT = "shop-a-next-key-" + "n" * 32  # a rotated key of the same storefront
KEY_B = "shop-b-key-" + "b" * 32
KEY_C = "shop-c-key-" + "c" * 32
KEY_D = "shop-d-key-" + "d" * 32
STOREFRONT_BURST = 60
#: The Idempotency-Key namespace ids were once derived with: an id must never be this.
OLD_NAMESPACE = uuid.UUID("5b0e7a3e-9d7c-4c55-9a55-6f6c61736873")


@pytest.fixture(scope="module")
def shops(servers: ServerSet) -> Iterator[System]:
    """A system that knows four storefronts, with tight per-client rates."""
    keys = [f"shop-a:{KEY_A}", f"shop-a:{KEY_A_NEXT}", f"shop-b:{KEY_B}"]
    keys += [f"shop-c:{KEY_C}", f"shop-d:{KEY_D}"]
    overrides = {
        "FLASHSALE_STOREFRONT_KEYS": ",".join(keys),
        "FLASHSALE_STOREFRONT_RATE_PER_SECOND": "1",
        "FLASHSALE_STOREFRONT_RATE_BURST": str(STOREFRONT_BURST),
        "FLASHSALE_CUSTOMER_RATE_PER_SECOND": "0.2",
        "FLASHSALE_CUSTOMER_RATE_BURST": "3",
    }
    workers = {"inventory": 1, "orders": 1, "payments": 1}
    with isolated_system(servers, workers=workers, overrides=overrides) as (lab, _, _):
        yield lab


@pytest.fixture
async def anon(shops: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shops.base_url, timeout=30) as c:
        yield c


def _as(shops: System, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=shops.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


# ---- the hold the HTTP server takes itself (no Idempotency-Key: gateway/server.py's
# hold_at_once), on a real server: its storefront keys and its customers' rates -------------
async def _failures_counted(c: httpx.AsyncClient) -> float:
    text = (await c.get("/metrics")).text
    line = next(
        (
            line
            for line in text.splitlines()
            if line.startswith('flashsale_auth_failures_total{kind="storefront_key"}')
        ),
        None,
    )
    return float(line.split()[-1]) if line else 0.0


async def test_a_storefront_request_without_a_valid_key_is_401_and_counted(
    shops: System, anon: httpx.AsyncClient
) -> None:
    """An unknown or missing key is the route's 401 (the server hands such a hold on)."""
    before = await _failures_counted(anon)
    product = await make_product(anon, stock=5)
    body = {"product_id": product["id"], "qty": 1}
    missing = await anon.post("/api/holds", json=body)
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    async with _as(shops, "not-a-key-" + "x" * 32) as wrong:
        assert_problem(await wrong.post("/api/holds", json=body), 401, "unauthorized")
        assert_problem(await wrong.get(f"/api/holds/{uuid.uuid4()}"), 401, "unauthorized")
    assert (await anon.get(f"/api/products/{product['id']}")).json()["available"] == 5
    assert await _failures_counted(anon) >= before + 3


async def test_one_customer_asking_too_fast_gets_429_with_retry_after(
    shops: System, anon: httpx.AsyncClient
) -> None:
    """The server's own hold path applies the per-customer rate, with the route's 429."""
    product = await make_product(anon, stock=50)
    body = {"product_id": product["id"], "qty": 1}
    async with _as(shops, KEY_C) as c:
        answers = [
            await c.post("/api/holds", json={**body, "customer_id": "fast-1"}) for _ in range(6)
        ]
        other = await c.post("/api/holds", json={**body, "customer_id": "calm-1"})
    assert [r.status_code for r in answers] == [201, 201, 201, 429, 429, 429]
    refused = assert_problem(answers[-1], 429, "rate_limited")
    assert refused["detail"] and int(answers[-1].headers["retry-after"]) >= 1
    assert other.status_code == 201
    assert (await anon.get(f"/api/products/{product['id']}")).json()["available"] == 46


async def test_another_storefront_cannot_see_or_order_a_hold_it_did_not_make(
    shops: System, anon: httpx.AsyncClient
) -> None:
    product = await make_product(anon, stock=5)
    async with _as(shops, KEY_A) as a, _as(shops, KEY_B) as b:
        hold = (await a.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
        assert_problem(await b.get(f"/api/holds/{hold['hold_id']}"), 404, "hold_not_found")
        stolen = await b.post("/api/orders", json={"hold_id": hold["hold_id"]})
        assert_problem(stolen, 404, "hold_not_found")
        mine = await a.post("/api/orders", json={"hold_id": hold["hold_id"]})
        assert mine.status_code == 201, mine.text
        order_id = mine.json()["order_id"]
        assert_problem(await b.get(f"/api/orders/{order_id}"), 404, "order_not_found")
        assert (await a.get(f"/api/orders/{order_id}")).json()["status"] == "pending"


async def test_idempotency_keys_are_scoped_per_storefront(
    shops: System, anon: httpx.AsyncClient
) -> None:
    product = await make_product(anon, stock=5)
    key = f"cart-{uuid.uuid4()}"
    body, headers = {"product_id": product["id"], "qty": 1}, {"Idempotency-Key": key}
    async with _as(shops, KEY_A) as a, _as(shops, KEY_B) as b:
        first_a = await a.post("/api/holds", json=body, headers=headers)
        first_b = await b.post("/api/holds", json=body, headers=headers)
        again_a = await a.post("/api/holds", json=body, headers=headers)
    assert (first_a.status_code, first_b.status_code, again_a.status_code) == (201, 201, 201)
    assert first_a.json()["hold_id"] != first_b.json()["hold_id"]
    assert again_a.json()["hold_id"] == first_a.json()["hold_id"]
    assert (await anon.get(f"/api/products/{product['id']}")).json()["available"] == 3


async def test_a_rotated_key_of_the_same_storefront_sees_its_holds(
    shops: System, anon: httpx.AsyncClient
) -> None:
    product = await make_product(anon, stock=5)
    async with _as(shops, KEY_A) as old, _as(shops, KEY_A_NEXT) as new:
        hold = (await old.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
        seen = await new.get(f"/api/holds/{hold['hold_id']}")
    assert seen.status_code == 200 and seen.json()["status"] == "active"


async def test_ids_are_random_not_derived_from_the_idempotency_key(
    shops: System, anon: httpx.AsyncClient
) -> None:
    product = await make_product(anon, stock=5)
    key = f"cart-{uuid.uuid4()}"
    async with _as(shops, KEY_A) as a:
        hold = await a.post(
            "/api/holds",
            json={"product_id": product["id"], "qty": 1},
            headers={"Idempotency-Key": key},
        )
        order = await a.post(
            "/api/orders",
            json={"hold_id": hold.json()["hold_id"]},
            headers={"Idempotency-Key": key},
        )
        replay = await a.post(
            "/api/orders",
            json={"hold_id": hold.json()["hold_id"]},
            headers={"Idempotency-Key": key},
        )
    hold_id, order_id = uuid.UUID(hold.json()["hold_id"]), uuid.UUID(order.json()["order_id"])
    assert (hold_id.version, order_id.version) == (4, 4)
    assert hold_id != uuid.uuid5(OLD_NAMESPACE, f"hold:{key}")
    assert order_id != uuid.uuid5(OLD_NAMESPACE, f"order:{key}")
    assert replay.status_code == 201 and replay.json()["order_id"] == str(order_id)


# ---- customers: an opaque token, required by a limited product (development system) ----------
async def test_an_anonymous_hold_on_a_limited_product_is_422_customer_id_required(
    client: httpx.AsyncClient,
) -> None:
    product = await make_product(client, stock=10, max_per_customer=2)
    r = await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
    assert_problem(r, 422, "customer_id_required")
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 10


async def test_200_anonymous_holds_take_nothing_from_a_limited_product(
    client: httpx.AsyncClient,
) -> None:
    product = await make_product(client, stock=100, max_per_customer=1)
    body = {"product_id": product["id"], "qty": 10}
    answers = await asyncio.gather(*[client.post("/api/holds", json=body) for _ in range(200)])
    assert {r.status_code for r in answers} == {422}
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 100


async def test_the_limit_counts_one_customer_once(client: httpx.AsyncClient) -> None:
    product = await make_product(client, stock=10, max_per_customer=1)
    body = {"product_id": product["id"], "qty": 1, "customer_id": "alice"}
    assert (await client.post("/api/holds", json=body)).status_code == 201
    again = await client.post("/api/holds", json=body)
    assert_problem(again, 409, "customer_limit_exceeded")
