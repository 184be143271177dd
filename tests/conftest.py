"""Session-wide real servers, a migrated database, and one running system of processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.migrate import upgrade
from tests import servers as server_sources
from tests.harness import System


@pytest.fixture(scope="session")
def servers() -> Iterator[server_sources.ServerSet]:
    """Real RabbitMQ and PostgreSQL for the whole session, migrated by the schema owner, stopped
    even when tests fail."""
    found = server_sources.start()
    try:
        upgrade(found.database_url)
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def system(servers: server_sources.ServerSet) -> Iterator[System]:
    """Gateway, two inventory workers, orders and payments workers as real processes, each with
    the application's database role and a broker user of its own kind."""
    running = System.on(servers).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
async def engine(servers: server_sources.ServerSet) -> AsyncIterator[AsyncEngine]:
    """Direct database access as the schema owner, to check (or corrupt) what the system wrote."""
    eng = create_async_engine(servers.database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client of the running gateway."""
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30, limits=limits) as c:
        yield c
