"""The inventory's writes on the real PostgreSQL: a rush's batch decided on the products as the
partition's last commit left them and written in one statement, and what happens when those
products moved meanwhile (another consumer during a failover, a redelivery)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.session import make_engine
from shared.db.tables import holds, products
from shared.messages import PlaceHold
from shared.settings import Settings
from tests.servers import ServerSet
from workers.inventory import domain, handlers

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(servers: ServerSet) -> Settings:
    return Settings(database_url=servers.database_url, hold_ttl_seconds=3600)


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A partition consumer's own connection pool."""
    eng = make_engine(settings, pool_size=1)
    yield eng
    await eng.dispose()


async def _product(engine: AsyncEngine, stock: int) -> int:
    async with engine.begin() as conn:
        row = await conn.execute(
            insert(products)
            .values(name=f"writes-{uuid.uuid4().hex[:8]}", price_cents=100, stock_total=stock)
            .values(available=stock)
            .returning(products.c.id)
        )
        return int(row.scalar_one())


async def _state(engine: AsyncEngine, product_id: int) -> tuple[int, int, int]:
    """available, version, and how many holds the product has."""
    async with engine.connect() as conn:
        p = (
            await conn.execute(
                select(products.c.available, products.c.version).where(products.c.id == product_id)
            )
        ).one()
        count = await conn.scalar(
            select(func.count()).select_from(holds).where(holds.c.product_id == product_id)
        )
        return p.available, p.version, int(count or 0)


def _holds(product_id: int, n: int) -> list[domain.InventoryCommand]:
    return [PlaceHold(hold_id=uuid.uuid4(), product_id=product_id, qty=1) for _ in range(n)]


def _placed(done: handlers.Committed) -> int:
    return sum(isinstance(d, domain.HoldPlaced) for d in done.decisions)


async def test_a_batch_on_a_known_product_is_written_from_what_the_last_commit_left(
    engine: AsyncEngine, writer: AsyncEngine, settings: Settings
) -> None:
    product_id = await _product(engine, 10)
    known: dict[int, domain.Product] = {}
    first = await handlers.handle(writer, settings, _holds(product_id, 3), known=known)
    assert _placed(first) == 3
    assert known[product_id].available == 7
    assert known[product_id].version == 1  # as the save left it

    second = await handlers.handle(writer, settings, _holds(product_id, 4), known=known)
    assert _placed(second) == 4
    assert second.levels[product_id].available == 3
    assert (known[product_id].available, known[product_id].version) == (3, 2)
    assert await _state(engine, product_id) == (3, 2, 7)

    sold_out = await handlers.handle(writer, settings, _holds(product_id, 5), known=known)
    assert _placed(sold_out) == 3
    assert [d.reason for d in sold_out.decisions if isinstance(d, domain.HoldRefused)] == [
        "insufficient_stock"
    ] * 2
    assert await _state(engine, product_id) == (0, 3, 10)


async def test_a_product_that_moved_since_it_was_known_is_read_again_and_never_oversold(
    engine: AsyncEngine, writer: AsyncEngine, settings: Settings
) -> None:
    """Another consumer sold the product meanwhile: the one-statement write changes nothing,
    and the batch is decided again on the product as it is."""
    product_id = await _product(engine, 5)
    stale: dict[int, domain.Product] = {}
    await handlers.handle(writer, settings, _holds(product_id, 1), known=stale)
    other: dict[int, domain.Product] = {}
    await handlers.handle(engine, settings, _holds(product_id, 3), known=other)
    assert stale[product_id].available == 4  # what this consumer believes

    done = await handlers.handle(writer, settings, _holds(product_id, 1), known=stale)
    (decision,) = done.decisions
    assert isinstance(decision, domain.HoldPlaced)
    assert decision.available == 0  # decided on the product as it is, not as it was known
    assert (done.levels[product_id].available, done.levels[product_id].version) == (0, 3)
    assert await _state(engine, product_id) == (0, 3, 5)

    await handlers.handle(engine, settings, _holds(product_id, 1), known=other)
    refused = await handlers.handle(writer, settings, _holds(product_id, 2), known=stale)
    assert _placed(refused) == 0
    assert await _state(engine, product_id) == (0, 3, 5)


async def test_a_redelivered_batch_on_a_known_product_replays_its_holds(
    engine: AsyncEngine, writer: AsyncEngine, settings: Settings
) -> None:
    product_id = await _product(engine, 5)
    known: dict[int, domain.Product] = {}
    batch = _holds(product_id, 2)
    await handlers.handle(writer, settings, batch, known=known)
    again = await handlers.handle(writer, settings, batch, known=known)
    assert [type(d) for d in again.decisions] == [domain.HoldReplayed] * 2
    assert await _state(engine, product_id) == (3, 1, 2)


async def test_consumers_overlapping_on_a_product_sell_its_stock_exactly_once(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Two consumers (as in a failover, each with its own connections and its own idea of the
    product) decide batches of the same product at the same time until it is sold out."""
    stock = 150
    product_id = await _product(engine, stock)

    async def consumer() -> int:
        eng = make_engine(settings, pool_size=1)
        known: dict[int, domain.Product] = {}
        placed = 0
        try:
            while True:
                done = await handlers.handle(eng, settings, _holds(product_id, 7), known=known)
                placed += _placed(done)
                if all(isinstance(d, domain.HoldRefused) for d in done.decisions):
                    return placed
        finally:
            await eng.dispose()

    placed = await asyncio.gather(*(consumer() for _ in range(3)))
    assert sum(placed) == stock
    available, _, count = await _state(engine, product_id)
    assert (available, count) == (0, stock)


async def test_consumer_processes_overlapping_on_a_product_sell_its_stock_exactly_once(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    """The same race between processes, as a failover has it: three consumer processes, each
    with its own pool and its own idea of the product, started together, decide batches of the
    same product until it is sold out (tests/integration/overlapping_consumer.py)."""
    stock = 300
    product_id = await _product(engine, stock)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.overlapping_consumer",
                settings.database_url,
                str(product_id),
                str(path),
                str(go),
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(path.exists() for path in ready):
            ended = [p for p in procs if p.poll() is not None]
            assert not ended, f"a consumer ended before the start: {ended[0].communicate()[1]}"
            assert time.monotonic() < deadline, "the consumers were not ready within 60 s"
            await asyncio.sleep(0.02)
        go.touch()
        outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    placed = [int(out.split()[-1]) for out, _ in outputs]
    assert sum(placed) == stock, placed
    assert sum(1 for n in placed if n) >= 2, f"the consumers did not overlap: {placed}"
    available, _, count = await _state(engine, product_id)
    assert (available, count) == (0, stock)
