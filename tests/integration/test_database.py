"""Migrations and seeding on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import migrate
from shared.db.migrate import downgrade, upgrade
from shared.db.tables import metadata
from shared.demo import DEMO_PRODUCTS, seed
from tests.cli import invoke
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


def _drift(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_the_migrations_make_exactly_the_tables_the_code_declares(servers: ServerSet) -> None:
    """Autogenerate against a freshly migrated database finds nothing to do: shared/db/tables.py
    and deploy/alembic/versions agree (the next migration starts from a true picture)."""
    url = await _scratch_database(servers)
    await asyncio.to_thread(upgrade, url)
    eng = create_async_engine(url)
    try:
        async with eng.connect() as conn:
            drift = await conn.run_sync(_drift)
    finally:
        await eng.dispose()
    assert drift == []


def test_db_revision_writes_the_next_migration_numbered_after_the_last(
    servers: ServerSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`flashsale db revision` against a database at head, on a copy of the migrations: the
    next number, and nothing to do while the tables and the migrations agree."""
    url = asyncio.run(_scratch_database(servers))
    upgrade(url)
    copy = tmp_path / "alembic"
    shutil.copytree(migrate.MIGRATIONS, copy)
    monkeypatch.setattr(migrate, "MIGRATIONS", copy)
    last = max(p.name[:4] for p in (copy / "versions").glob("[0-9]*.py"))
    code, out, _ = invoke(
        capsys, monkeypatch, "db", "revision", "Add a probe", FLASHSALE_DATABASE_URL=url
    )
    assert code == 0, out
    written = Path(out.strip().splitlines()[-1])  # after alembic's own "Generating …"
    assert written.parent == copy / "versions"
    assert written.name == f"{int(last) + 1:04d}_add_a_probe.py"
    text_ = written.read_text()
    assert f'down_revision = "{last}"' in text_ or f"down_revision = '{last}'" in text_
    upgrades = text_.split("def upgrade() -> None:")[1].split("def downgrade")[0]
    assert [line.strip() for line in upgrades.splitlines() if line.strip()] == [
        "# ### commands auto generated by Alembic - please adjust! ###",
        "pass",
        "# ### end Alembic commands ###",
    ]  # no drift: nothing to migrate
