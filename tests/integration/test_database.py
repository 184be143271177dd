"""Migrations and seeding on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrate import downgrade, upgrade
from shared.demo import DEMO_PRODUCTS, seed
from tests.servers import ServerSet

pytestmark = pytest.mark.integration


async def _tables(url: str) -> set[str]:
    eng = create_async_engine(url)
    try:
        async with eng.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {r[0] for r in rows}
    finally:
        await eng.dispose()


async def _scratch_database(servers: ServerSet) -> str:
    """A new empty database on the test server, so up/down cannot disturb other tests."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(servers.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(servers.database_url).set(database=name).render_as_string(hide_password=False)


async def test_migrations_go_up_and_down_on_an_empty_database(servers: ServerSet) -> None:
    url = await _scratch_database(servers)
    assert await _tables(url) == set()
    await asyncio.to_thread(upgrade, url)
    assert {"products", "holds", "orders", "payment_events"} <= await _tables(url)
    await asyncio.to_thread(downgrade, url)
    assert await _tables(url) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, url)
    assert {"products", "holds", "orders", "payment_events"} <= await _tables(url)


async def test_available_out_of_range_is_refused_by_the_database(servers: ServerSet) -> None:
    eng = create_async_engine(servers.database_url)
    try:
        for available in (-1, 11):
            with pytest.raises(Exception, match="available_in_range"):
                async with eng.begin() as conn:
                    await conn.execute(
                        text(
                            "INSERT INTO products (name, price_cents, stock_total, available) "
                            "VALUES ('x', 1, 10, :a)"
                        ),
                        {"a": available},
                    )
    finally:
        await eng.dispose()


async def test_seeding_twice_adds_the_demo_products_once(servers: ServerSet) -> None:
    url = await _scratch_database(servers)
    await asyncio.to_thread(upgrade, url)
    eng = create_async_engine(url)
    try:
        first, second = await seed(eng), await seed(eng)
        async with eng.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM products"))).scalar_one()
        assert (first, second, count) == (len(DEMO_PRODUCTS), 0, len(DEMO_PRODUCTS))
    finally:
        await eng.dispose()
