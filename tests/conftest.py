"""Session-wide real servers, a migrated database, and one running system of processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.migrate import upgrade
from tests import servers as server_sources
from tests.harness import System

#: the files that take longest (seconds, measured serially), started first when the suite runs
#: in parallel (`-n`), so that no worker is left with one of them after the others finished
LONGEST_FIRST = (
    "tests/fault/test_broker_cluster.py",  # ~120: starts a 3-node cluster, loses a node
    "tests/e2e/test_launcher.py",  # ~75: `flashsale up`, `down`, Ctrl-C
    "tests/e2e/test_openapi_contract.py",  # ~50: schemathesis against a live gateway
    "tests/fault/test_inventory_faults.py",
    "tests/fault/test_process_faults.py",
    "tests/fault/test_server_faults.py",
    "tests/fault/test_poison_and_operator_cli.py",
    "tests/e2e/test_readiness.py",  # starts and stops RabbitMQ twice
    "tests/integration/test_least_privilege.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a parallel run (an xdist worker collects), the longest files go first; `-p xdist`'s
    `--dist loadfile --no-loadscope-reorder` then hands them out in that order. A serial run
    keeps the order of the files on disk."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
