"""Holds benchmark: `./dev bench [--clients 100] [--seconds 20]`.

Starts its own RabbitMQ and PostgreSQL (or uses FLASHSALE_TEST_* URLs), a gateway and the
workers as separate processes, then drives one hot product with N concurrent HTTP clients and
prints holds/s and latency percentiles (load from wrk); then, on a second system with a 3 s
hold TTL, measures how late RabbitMQ-driven expiry is.
It prints figures; it asserts nothing (tests check behaviour, this measures speed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
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


def _drive(base_url: str, product_id: int, clients: int, seconds: float) -> dict[str, Any]:
    """Load from wrk (C, one thread): a Python client would be the bottleneck on 2 cores."""
    script = Path(tempfile.mkdtemp()) / "hold.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = \'{{"product_id": {product_id}, "qty": 1}}\'\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            str(script),
            f"{base_url}/api/holds",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, Any] = {"raw": out}
    for line in out.splitlines():
        parts = line.split()
        if line.strip().startswith(("50%", "90%", "99%")):
            figures[parts[0]] = parts[1]
        elif line.startswith("Requests/sec:"):
            figures["rps"] = float(parts[1])
        elif "Non-2xx" in line:
            figures["non_2xx"] = int(parts[-1])
        elif "requests in" in line:
            figures["requests"] = int(parts[0])
    return figures


async def _product(base_url: str, stock: int) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        r = await c.post(
            "/api/admin/products",
            headers=ADMIN,
            json={"name": f"bench-{time.time()}", "price_cents": 100, "stock": stock},
        )
        return int(r.json()["id"])


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
    parser.add_argument(
        "--hold-ttl",
        type=int,
        default=120,
        help="hold TTL of the throughput run (expiry is measured apart)",
    )
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
            },
        ).start()
        product_id = asyncio.run(_product(system.base_url, 100_000_000))
        _drive(system.base_url, product_id, 10, 2)  # warm-up
        run = _drive(system.base_url, product_id, args.clients, args.seconds)
        print(
            f"holds: {args.clients} concurrent connections (wrk), one hot product, "
            f"{args.seconds:.0f} s, inventory workers: {args.inventory_workers}"
        )
        print(f"  requests       {run.get('requests')} (non-2xx: {run.get('non_2xx', 0)})")
        print(f"  throughput     {run.get('rps', 0):.0f} holds/s")
        print(
            f"  latency        p50 {run.get('50%')}   p90 {run.get('90%')}   p99 {run.get('99%')}"
        )
        system.stop()
        system = System(
            found.amqp_url,
            found.database_url,
            workers={"inventory": 1, "orders": 1, "payments": 1},
            overrides={"FLASHSALE_HOLD_TTL_SECONDS": "3"},
        ).start()
        late = asyncio.run(_expiry_lateness(system.base_url, found.database_url, args.expiry_holds))
        print(f"expiry: {len(late)} holds with a 3 s TTL, lateness of the expiry after expires_at")
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
