"""Redelivery, duplicates, deadlines, the sweep and failover, on the real broker and database."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topology
from shared.bus import encode
from shared.db.tables import holds, products
from shared.messages import ExpireHold, PlaceHold
from tests.harness import System, isolated_system, wait_for
from tests.helpers import (
    assert_stock_conserved,
    consumer_connection,
    count_holds,
    insert_hold_without_its_message,
    make_product,
)
from tests.servers import ServerSet

pytestmark = pytest.mark.fault
PARTITIONS = 8  # the session system's default


async def _publish_to_partition(amqp_url: str, *messages: object) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.INVENTORY_EXCHANGE.name)
        for m in messages:
            key = topology.product_routing_key(m.product_id, PARTITIONS)  # type: ignore[attr-defined]
            await exchange.publish(encode(m), key, mandatory=True)  # type: ignore[arg-type]


async def _hold_status(engine: AsyncEngine, hold_id: uuid.UUID) -> str | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(select(holds.c.status).where(holds.c.id == hold_id))
        ).scalar_one_or_none()


async def _available(engine: AsyncEngine, product_id: int) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(select(products.c.available).where(products.c.id == product_id))
            ).scalar_one()
        )


async def test_the_same_command_delivered_twice_creates_one_hold(
    client: httpx.AsyncClient, engine: AsyncEngine, servers: ServerSet
) -> None:
    product = await make_product(client, stock=5)
    cmd = PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=2)
    marker = PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=1)
    await _publish_to_partition(servers.amqp_url, cmd, cmd, marker)
    await wait_for(lambda: _hold_status(engine, marker.hold_id))  # decided after both copies
    assert await count_holds(engine, product["id"]) == 2  # the command's hold and the marker's
    assert await _available(engine, product["id"]) == 2
    await assert_stock_conserved(engine, product["id"])


async def test_a_duplicate_expiry_message_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, servers: ServerSet
) -> None:
    product = await make_product(client, stock=5)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 2})).json()
    hold_id = uuid.UUID(hold["hold_id"])

    async def expired() -> bool:
        return await _hold_status(engine, hold_id) == "expired"

    await wait_for(expired, timeout=20)
    assert await _available(engine, product["id"]) == 5
    again = ExpireHold(hold_id=hold_id, product_id=product["id"])
    await _publish_to_partition(servers.amqp_url, again, again)
    marker = PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=1)
    await _publish_to_partition(servers.amqp_url, marker)  # handled after both duplicates
    await wait_for(lambda: _hold_status(engine, marker.hold_id))
    assert await _available(engine, product["id"]) == 4  # only the marker's unit is gone
    await assert_stock_conserved(engine, product["id"])


async def test_a_command_past_its_deadline_is_dropped(
    client: httpx.AsyncClient, engine: AsyncEngine, servers: ServerSet
) -> None:
    product = await make_product(client, stock=5)
    late = PlaceHold(
        hold_id=uuid.uuid4(),
        product_id=product["id"],
        qty=1,
        deadline=datetime.now(UTC) - timedelta(seconds=1),
    )
    marker = PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=1)
    await _publish_to_partition(servers.amqp_url, late, marker)
    await wait_for(lambda: _hold_status(engine, marker.hold_id))
    assert await _hold_status(engine, late.hold_id) is None
    assert await _available(engine, product["id"]) == 4


async def test_no_phantom_hold_when_no_worker_answered_in_time(
    servers: ServerSet, engine: AsyncEngine
) -> None:
    # a gateway, and no inventory worker yet
    overrides = {"FLASHSALE_REQUEST_TIMEOUT_SECONDS": "1"}
    with isolated_system(servers, workers={}, overrides=overrides) as (lonely, _, _):
        async with httpx.AsyncClient(base_url=lonely.base_url, timeout=30) as c:
            product = await make_product(c, stock=5)
            r = await c.post("/api/holds", json={"product_id": product["id"], "qty": 1})
            assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
            assert r.headers["Retry-After"]
            lonely.add("inventory")
            lonely.wait_workers()
            marker = await c.post("/api/holds", json={"product_id": product["id"], "qty": 2})
            assert marker.status_code == 201
        assert await count_holds(engine, product["id"]) == 1  # only the marker
        assert await _available(engine, product["id"]) == 3


async def test_the_sweep_expires_a_hold_whose_expiry_message_was_lost(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=5)
    hold_id = await insert_hold_without_its_message(
        engine, product["id"], 2, expired_for=timedelta(seconds=10)
    )

    async def expired() -> bool:
        return await _hold_status(engine, hold_id) == "expired"

    await wait_for(expired, timeout=15)
    assert await _available(engine, product["id"]) == 5
    await assert_stock_conserved(engine, product["id"])


def _active_inventory_pid(
    servers: ServerSet, partition: str, not_pid: int = 0, vhost: str = "/"
) -> int:
    """Pid of the inventory worker the broker shows active on `partition` of `vhost` (other
    systems' partitions have the same names; the broker's view lags)."""
    deadline = time.monotonic() + 30
    while True:
        pid = _shown_active(servers, partition, vhost)
        if pid is not None and pid != not_pid:
            return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"no active consumer other than {not_pid} on {partition}")
        time.sleep(0.5)


def _shown_active(servers: ServerSet, partition: str, vhost: str) -> int | None:
    assert servers.management_url
    api = servers.management_url.rstrip("/") + "/api"
    given = {
        c["name"]: c.get("user_provided_name") or ""
        for c in httpx.get(f"{api}/connections", auth=servers.management_auth, timeout=10).json()
    }
    consumers = httpx.get(f"{api}/consumers", auth=servers.management_auth, timeout=10).json()
    for c in consumers:
        queue = c["queue"]
        if queue["name"] == partition and queue["vhost"] == vhost and c.get("active", True):
            name = given.get(consumer_connection(c) or "", "")
            if name.startswith("inventory-consumer-"):
                return int(name.rsplit("-", 1)[1])
    return None


async def test_kill_9_of_the_active_inventory_worker_loses_and_duplicates_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, system: System, servers: ServerSet
) -> None:
    product = await make_product(client, stock=100_000)
    partition = topology.product_routing_key(product["id"], PARTITIONS)
    active_pid = _active_inventory_pid(servers, partition)
    victim = next(n for n, p in system.procs.items() if p.pid == active_pid)
    keys: list[str] = []
    answers: list[httpx.Response] = []
    stop_at = time.monotonic() + 5

    async def shopper() -> None:
        while time.monotonic() < stop_at:
            key = f"failover-{uuid.uuid4()}"
            keys.append(key)
            answers.append(
                await client.post(
                    "/api/holds",
                    json={"product_id": product["id"], "qty": 1},
                    headers={"Idempotency-Key": key},
                )
            )

    shoppers = [asyncio.create_task(shopper()) for _ in range(20)]
    await asyncio.sleep(1.5)
    system.kill9(victim)
    await asyncio.gather(*shoppers)
    try:
        placed = {r.json()["hold_id"] for r in answers if r.status_code == 201}
        assert len(placed) > 50 and all(r.status_code in (201, 503) for r in answers)
        assert _active_inventory_pid(servers, partition, not_pid=active_pid)  # standby took over
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(holds.c.id, holds.c.idempotency_key).where(
                        holds.c.product_id == product["id"]
                    )
                )
            ).all()
        in_db = {str(h) for h, _ in rows}
        assert placed <= in_db  # every 201 is in the database
        assert {k for _, k in rows} <= set(keys)  # nothing we did not ask
        await assert_stock_conserved(engine, product["id"])  # some have expired by now
    finally:
        system.add("inventory")  # a standby again for the tests after this one
        system.wait_workers()


async def test_a_restock_delivered_twice_adds_once(
    client: httpx.AsyncClient, engine: AsyncEngine, servers: ServerSet
) -> None:
    from shared.messages import Restock

    product = await make_product(client, stock=3)
    restock = Restock(product_id=product["id"], add=4)
    marker = PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=1)
    await _publish_to_partition(servers.amqp_url, restock, restock, marker)
    await wait_for(lambda: _hold_status(engine, marker.hold_id))
    ledger = await assert_stock_conserved(engine, product["id"])
    assert (ledger["stock_total"], ledger["available"]) == (7, 6)


async def test_a_partition_decides_in_delivery_order_first_come_first_served(
    client: httpx.AsyncClient, engine: AsyncEngine, servers: ServerSet
) -> None:
    product = await make_product(client, stock=10)
    from shared.db.tables import restocks
    from shared.messages import Restock

    burst = [PlaceHold(hold_id=uuid.uuid4(), product_id=product["id"], qty=1) for _ in range(50)]
    marker = Restock(product_id=product["id"], add=1)  # decided after the whole burst
    await _publish_to_partition(servers.amqp_url, *burst, marker)

    async def burst_decided() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(restocks.c.message_id).where(restocks.c.message_id == marker.message_id)
            )
            return found.first() is not None

    await wait_for(burst_decided, timeout=20)
    async with engine.connect() as conn:
        winners = set(
            (
                await conn.execute(select(holds.c.id).where(holds.c.product_id == product["id"]))
            ).scalars()
        )
    assert winners == {cmd.hold_id for cmd in burst[:10]}
    await assert_stock_conserved(engine, product["id"])


async def test_late_order_and_webhook_answers_are_202_and_still_take_effect(
    servers: ServerSet, engine: AsyncEngine
) -> None:
    from tests.helpers import post_webhook

    # the hold must outlive the start of the orders and payments workers, however slow
    overrides = {"FLASHSALE_REQUEST_TIMEOUT_SECONDS": "1", "FLASHSALE_HOLD_TTL_SECONDS": "60"}
    with isolated_system(servers, workers={"inventory": 1}, overrides=overrides) as (lab, _, _):
        async with httpx.AsyncClient(base_url=lab.base_url, timeout=30) as c:
            product = await make_product(c, stock=5)
            hold = (await c.post("/api/holds", json={"product_id": product["id"], "qty": 2})).json()
            late = await c.post("/api/orders", json={"hold_id": hold["hold_id"]})
            assert late.status_code == 202, late.text  # no orders worker runs yet
            order_id = late.json()["order_id"]
            assert late.json()["status"] == "processing"
            queued = await post_webhook(
                c,
                {
                    "idempotency_key": f"late-{uuid.uuid4()}",
                    "order_id": order_id,
                    "status": "success",
                },
            )
            assert queued.status_code == 202 and queued.json()["result"] == "queued"
            lab.add("orders")
            lab.add("payments")
            lab.wait_workers()

            async def paid() -> bool:
                r = await c.get(f"/api/orders/{order_id}")
                return r.status_code == 200 and r.json()["status"] == "paid"

            await wait_for(paid, timeout=30)  # the queued commands were applied, in either order
        await assert_stock_conserved(engine, product["id"])


async def test_a_success_after_a_failure_applied_before_the_order_is_ignored(
    servers: ServerSet, engine: AsyncEngine
) -> None:
    from tests.helpers import insert_hold_without_its_message, post_webhook

    # no inventory worker at first: the release of the failed payment waits in its partition
    with isolated_system(servers, workers={"orders": 1, "payments": 1}) as (lab, _, _):
        async with httpx.AsyncClient(base_url=lab.base_url, timeout=30) as c:
            product = await make_product(c, stock=5)
            hold_id = await insert_hold_without_its_message(
                engine, product["id"], 2, expired_for=timedelta(seconds=-60)
            )
            failed = await post_webhook(
                c,
                {
                    "idempotency_key": f"f-{uuid.uuid4()}",
                    "hold_id": str(hold_id),
                    "status": "failed",
                },
            )
            assert failed.json()["result"] == "pending_order"
            order = (await c.post("/api/orders", json={"hold_id": str(hold_id)})).json()
            success = await post_webhook(
                c,
                {
                    "idempotency_key": f"s-{uuid.uuid4()}",
                    "order_id": order["order_id"],
                    "status": "success",
                },
            )
            assert success.status_code == 200 and success.json()["result"] == "ignored"
            lab.add("inventory")
            lab.wait_workers()

            async def cancelled() -> bool:
                r = await c.get(f"/api/orders/{order['order_id']}")
                return bool(r.json()["status"] == "cancelled")

            await wait_for(cancelled, timeout=20)
        ledger = await assert_stock_conserved(engine, product["id"])
        assert ledger["available"] == 5
