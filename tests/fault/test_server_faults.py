"""Fault matrix, servers: PostgreSQL stopped at once (`pg_ctl stop -m immediate`) and started
again, RabbitMQ's `stop_app` / `start_app`, each under steady load, on servers of their own
(the session's servers must stay up for every other test)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.migrate import upgrade
from shared.localservers import (
    AMQP_PASSWORD,
    AMQP_USER,
    PG_USER,
    LocalServers,
    _as_user,
    pg_bin_dir,
)
from tests import servers as sources
from tests.fault.load import SteadyLoad, assert_nothing_lost_doubled_oversold_or_stuck
from tests.fault.throwaway import discard
from tests.harness import System, wait_for
from tests.helpers import make_product

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(pg_bin_dir() is None, reason="needs the local launcher's servers"),
]

OUTAGE_SECONDS = 6.0
#: From the server being back to a hold placed again.
RECOVERY_BOUND = 15.0


@pytest.fixture(scope="module")
def own() -> Iterator[sources.ServerSet]:
    """A RabbitMQ and PostgreSQL pair of this module's own (its own node name beside the
    session's), stopped and removed even when tests fail."""
    local, home = sources.local_servers("faults")

    def stop() -> None:
        try:
            discard(local)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    try:
        local.start()
        found = sources.ServerSet(
            local.amqp_url,
            local.owner_database_url,
            local.management_url,
            (AMQP_USER, AMQP_PASSWORD),
            "local",
            stop=stop,
            app_database_url=local.app_database_url,
            amqp_urls=local.amqp_urls,
            local=local,
        )
        upgrade(found.database_url)
        yield found
    finally:
        stop()


@pytest.fixture(scope="module")
def own_system(own: sources.ServerSet) -> Iterator[System]:
    running = System.on(own).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def own_engine(own: sources.ServerSet) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(own.database_url, pool_size=2, pool_pre_ping=True)
    yield eng
    await eng.dispose()


def _local(own: sources.ServerSet) -> LocalServers:
    assert own.local is not None
    return own.local


def _stop_postgres_now(local: LocalServers) -> None:
    """What a crash looks like to the clients: no shutdown checkpoint, connections cut."""
    pg_ctl = str(pg_bin_dir() / "pg_ctl")  # type: ignore[operator]
    data = str(local._pg_data)
    argv = _as_user(PG_USER, [pg_ctl, "-D", data, "stop", "-m", "immediate"])
    subprocess.run(argv, capture_output=True, check=True, stdin=subprocess.DEVNULL)


async def _outage(
    system: System, engine: AsyncEngine, stop: object, start: object
) -> tuple[SteadyLoad, float]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as c:
        product = await make_product(c, stock=1_000_000)
    async with SteadyLoad(system.base_url, product["id"]) as load:
        await load.serving()
        await asyncio.to_thread(stop)  # type: ignore[arg-type]
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(start)  # type: ignore[arg-type]
        back = time.monotonic()

        async def placing_again() -> bool:
            return bool(load.successes_after(back))

        await wait_for(placing_again, timeout=RECOVERY_BOUND + 15, interval=0.2)
        recovery = min(a.ended for a in load.successes_after(back)) - back
        await load.serving(since=back, timeout=RECOVERY_BOUND + 15)  # every route again
    load.assert_honest_answers()
    assert not [a for a in load.failures() if a.status != 503], "only 503s, no lost connection"
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, load, stuck_within=60)
    return load, recovery


async def test_postgresql_stopped_at_once_mid_sale_gives_503s_and_no_500_and_recovers(
    own: sources.ServerSet, own_system: System, own_engine: AsyncEngine
) -> None:
    local = _local(own)
    load, recovery = await _outage(
        own_system, own_engine, lambda: _stop_postgres_now(local), local.start_postgres
    )
    print(  # noqa: T201 (the figure, with -s)
        f"database outage: {len(load.failures())} answers 503, recovered {recovery:.2f} s after "
        "the database was back"
    )
    assert load.failures(), "the outage was seen"
    assert recovery < RECOVERY_BOUND


async def test_the_broker_stopped_and_started_gives_503s_and_no_500_and_recovers(
    own: sources.ServerSet, own_system: System, own_engine: AsyncEngine
) -> None:
    local = _local(own)
    load, recovery = await _outage(
        own_system,
        own_engine,
        lambda: local.rabbitmqctl("stop_app"),
        lambda: local.rabbitmqctl("start_app"),
    )
    print(  # noqa: T201 (the figure, with -s)
        f"broker outage: {len(load.failures())} answers 503, recovered {recovery:.2f} s after "
        "the broker was back"
    )
    assert load.failures(), "the outage was seen"
    assert recovery < RECOVERY_BOUND
