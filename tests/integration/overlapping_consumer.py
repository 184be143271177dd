"""One partition consumer in a process of its own, for the overlapping-consumers test.

`python -m tests.integration.overlapping_consumer DATABASE_URL PRODUCT_ID READY GO`: opens its
own connection pool, touches READY, waits until GO exists, then decides batches of 7 new holds
on the product through the inventory's own batch (`workers.inventory.handlers.handle`, with its
own idea of the product) until a batch is refused whole; prints how many holds it placed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from sqlalchemy import text

from shared.db.session import make_engine
from shared.messages import PlaceHold
from shared.settings import Settings
from workers.inventory import domain, handlers


async def main(database_url: str, product_id: int, ready: Path, go: Path) -> int:
    settings = Settings(database_url=database_url, hold_ttl_seconds=3600)
    engine = make_engine(settings, pool_size=1)
    known: dict[int, domain.Product] = {}
    placed = 0
    try:
        async with engine.connect() as conn:  # connected before the start: a fair race
            await conn.execute(text("SELECT 1"))
        ready.touch()
        while not go.exists():
            await asyncio.sleep(0.005)
        while True:
            batch: list[domain.InventoryCommand] = [
                PlaceHold(hold_id=uuid.uuid4(), product_id=product_id, qty=1) for _ in range(7)
            ]
            done = await handlers.handle(engine, settings, batch, known=known)
            placed += sum(isinstance(d, domain.HoldPlaced) for d in done.decisions)
            if all(isinstance(d, domain.HoldRefused) for d in done.decisions):
                return placed
    finally:
        await engine.dispose()


if __name__ == "__main__":
    url, product, ready_at, go_at = sys.argv[1:5]
    placed = asyncio.run(main(url, int(product), Path(ready_at), Path(go_at)))
    sys.stdout.write(f"{placed}\n")
