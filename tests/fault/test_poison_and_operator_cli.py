"""Poison messages end in `<queue>.dead` and come back with `dlq replay`; audit and sweep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared import topology
from shared.db.migrate import upgrade
from shared.db.tables import holds, products
from shared.messages import PlaceHold
from shared.settings import PROJECT_ROOT
from tests.fault.test_inventory_faults import _publish_to_partition
from tests.harness import isolated_system, wait_for
from tests.helpers import insert_hold_without_its_message, make_product
from tests.integration.test_database import _scratch_database
from tests.servers import ServerSet

pytestmark = pytest.mark.fault


def flashsale(*args: str, amqp_url: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the operator command line as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env.update({"FLASHSALE_AMQP_URL": amqp_url, "FLASHSALE_DATABASE_URL": database_url})
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in a queue, as the broker says now (the management API's figures lag by
    seconds)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def test_a_message_that_always_fails_is_dead_lettered_and_replayed(
    servers: ServerSet,
) -> None:
    with isolated_system(servers, workers={"inventory": 1}) as (lab, vhost, amqp):
        # an id beyond the database's bigint: every attempt raises in the handler
        poison = PlaceHold(hold_id=uuid.uuid4(), product_id=2**63 + 7, qty=1)
        source = topology.product_routing_key(poison.product_id, 8)
        dead = f"{source}.dead"
        await _publish_to_partition(amqp, poison)

        async def dead_lettered() -> bool:
            return await _queue_depth(amqp, dead) == 1

        await wait_for(dead_lettered, timeout=30)
        listed = flashsale(
            "dlq",
            "list",
            "--json",
            "--queue",
            dead,
            amqp_url=amqp,
            database_url=servers.database_url,
        )
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert len(rows) == 1, rows
        [row] = rows
        assert row["dead_queue"] == dead and row["source_queue"] == source
        assert row["message_id"] == str(poison.message_id) and row["type"] == "PlaceHold"
        # a decision error is not a passing fault: dead-lettered at once, not retried
        assert row["reason"] == "decision_error" and row["count"] == 1
        assert str(poison.product_id) in row["last_error"]  # the handler's own error
        assert "worker inventory-" in row["last_error"] and "delivery 1" in row["last_error"]
        assert row["failures"] == 1
        human = flashsale("dlq", "list", amqp_url=amqp, database_url=servers.database_url)
        assert str(poison.message_id) in human.stdout and "last error" in human.stdout
        assert await _queue_depth(amqp, dead) == 1  # listing leaves it in place

        lab.stop()  # nobody consumes the partition now: the replayed message stays visible
        replayed = flashsale("dlq", "replay", amqp_url=amqp, database_url=servers.database_url)
        assert replayed.returncode == 0 and "replayed 1 message" in replayed.stdout

        async def back_in_source() -> bool:
            return await _queue_depth(amqp, source) == 1 and await _queue_depth(amqp, dead) == 0

        await wait_for(back_in_source, timeout=30)


async def test_audit_passes_when_conserved_and_names_the_product_that_is_not(
    servers: ServerSet,
) -> None:
    url = await _scratch_database(servers)
    await asyncio.to_thread(upgrade, url)
    eng = create_async_engine(url)
    try:
        async with eng.begin() as conn:
            for name, total, avail in [("fine", 10, 7), ("broken", 10, 8)]:
                await conn.execute(
                    text(
                        "INSERT INTO products (name, price_cents, stock_total, available) "
                        "VALUES (:n, 100, :t, :a)"
                    ),
                    {"n": name, "t": total, "a": avail},
                )
            rows = (await conn.execute(text("SELECT name, id FROM products"))).all()
            ids: dict[str, int] = {r[0]: r[1] for r in rows}
            for pid in ids.values():
                await conn.execute(
                    holds.insert().values(
                        id=uuid.uuid4(),
                        product_id=pid,
                        qty=3,
                        status="active",
                        expires_at=datetime.now(UTC) + timedelta(minutes=2),
                    )
                )
            await conn.execute(
                update(products).where(products.c.id == ids["broken"]).values(available=7)
            )
        ok = flashsale("audit", amqp_url=servers.amqp_url, database_url=url)
        assert ok.returncode == 0 and "audit passed" in ok.stdout, ok.stdout + ok.stderr
        stats = flashsale("stats", "--json", amqp_url=servers.amqp_url, database_url=url)
        by_name = {r["name"]: r for r in json.loads(stats.stdout)}
        assert (by_name["fine"]["available"], by_name["fine"]["held"]) == (7, 3)

        async with eng.begin() as conn:  # corrupt one product
            await conn.execute(
                update(products).where(products.c.id == ids["broken"]).values(available=8)
            )
        bad = flashsale("audit", amqp_url=servers.amqp_url, database_url=url)
        assert bad.returncode == 1
        assert f"product {ids['broken']} (broken)" in bad.stdout
        assert f"product {ids['fine']} " not in bad.stdout
    finally:
        await eng.dispose()


async def test_holds_sweep_command_expires_an_overdue_hold_now(
    servers: ServerSet, engine: AsyncEngine
) -> None:
    with isolated_system(servers, workers={"inventory": 1}) as (lab, vhost, amqp):
        async with httpx.AsyncClient(base_url=lab.base_url, timeout=30) as c:
            product = await make_product(c, stock=4)
        hold_id = await insert_hold_without_its_message(
            engine, product["id"], 2, expired_for=timedelta(seconds=30)
        )
        out = flashsale("holds", "sweep", amqp_url=amqp, database_url=servers.database_url)
        assert out.returncode == 0 and "re-issued expiry of" in out.stdout, out.stderr

        async def expired() -> bool:
            async with engine.connect() as conn:
                status = (
                    await conn.execute(select(holds.c.status).where(holds.c.id == hold_id))
                ).scalar_one()
            return bool(status == "expired")

        await wait_for(expired, timeout=15)
