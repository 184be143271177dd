"""Holds benchmark: `./dev bench [--clients 100] [--seconds 20]`.

Starts its own RabbitMQ and PostgreSQL (or uses FLASHSALE_TEST_* URLs), a gateway and the
workers as separate processes, then drives one hot product with N concurrent HTTP clients and
prints holds/s and latency percentiles; finally measures how late RabbitMQ-driven expiry is.
It prints figures; it asserts nothing (tests check behaviour, this measures speed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrate import upgrade
from shared.db.tables import holds
from tests import servers as server_sources
from tests.harness import System
from tests.helpers import ADMIN


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _drive(base_url: str, clients: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as c:
        product = (
            await c.post(
                "/api/admin/products",
                headers=ADMIN,
                json={"name": f"bench-{time.time()}", "price_cents": 100, "stock": 10_000_000},
            )
        ).json()
        latencies: list[float] = []
        codes: dict[int, int] = {}
        stop_at = time.perf_counter() + seconds

        async def shopper() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = await c.post("/api/holds", json={"product_id": product["id"], "qty": 1})
                latencies.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*[shopper() for _ in range(clients)])
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, "codes": codes}


async def _expiry_lateness(base_url: str, database_url: str, n: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        product = (
            await c.post(
                "/api/admin/products",
                headers=ADMIN,
                json={"name": f"bench-expiry-{time.time()}", "price_cents": 100, "stock": n},
            )
        ).json()
        for _ in range(n):
            assert (
                await c.post("/api/holds", json={"product_id": product["id"], "qty": 1})
            ).status_code == 201
    engine = create_async_engine(database_url)
    try:
        while True:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(holds.c.expires_at, holds.c.updated_at, holds.c.status).where(
                            holds.c.product_id == product["id"]
                        )
                    )
                ).all()
            if all(r.status == "expired" for r in rows):
                return [(r.updated_at - r.expires_at).total_seconds() for r in rows]
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def _count(database_url: str) -> int:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(holds))).scalar_one()
    await engine.dispose()
    return int(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--inventory-workers", type=int, default=1)
    parser.add_argument("--expiry-holds", type=int, default=200)
    parser.add_argument("--hold-ttl", type=int, default=3)
    args = parser.parse_args()

    found = server_sources.start()
    system = None
    try:
        upgrade(found.database_url)
        system = System(
            found.amqp_url,
            found.database_url,
            workers={"inventory": args.inventory_workers, "orders": 1, "payments": 1},
            overrides={
                "FLASHSALE_HOLD_TTL_SECONDS": str(args.hold_ttl),
                "FLASHSALE_LOG_LEVEL": "WARNING",
            },
        ).start()
        asyncio.run(_drive(system.base_url, 10, 2))  # warm-up
        run = asyncio.run(_drive(system.base_url, args.clients, args.seconds))
        lat = run["latencies"]
        ok = run["codes"].get(201, 0)
        print(f"holds: {args.clients} concurrent clients, one hot product, {run['elapsed']:.1f} s")
        print(f"  answers        {dict(sorted(run['codes'].items()))}")
        print(f"  throughput     {ok / run['elapsed']:.0f} holds/s (201 answers per second)")
        print(
            f"  latency        p50 {_pct(lat, 50) * 1000:.1f} ms   p90 {_pct(lat, 90) * 1000:.1f}"
            f" ms   p99 {_pct(lat, 99) * 1000:.1f} ms   max {max(lat) * 1000:.1f} ms"
        )
        late = asyncio.run(_expiry_lateness(system.base_url, found.database_url, args.expiry_holds))
        print(f"expiry: {len(late)} holds with a {args.hold_ttl} s TTL, lateness after expires_at")
        print(
            f"  p50 {statistics.median(late) * 1000:.0f} ms   p99 {_pct(late, 99) * 1000:.0f} ms"
            f"   max {max(late) * 1000:.0f} ms"
        )
    finally:
        if system is not None:
            system.stop()
        found.stop()


if __name__ == "__main__":
    main()
