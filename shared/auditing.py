"""The stock conservation audit (`flashsale audit`) run by a worker every minute, as gauges.

Read in one REPEATABLE READ snapshot, so a committed state is seen whole: any product it finds
unconserved is a real violation of the first invariant, not a race with a running batch. The
orders worker runs it (each replica: the gauges agree, alert on their maximum).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.audit import ProductLedger, ledgers
from shared.metrics import AUDIT_DRIFT, AUDIT_LAST_SUCCESS, AUDIT_PRODUCTS, AUDIT_VIOLATIONS
from shared.worker import WorkerContext

AUDIT_INTERVAL_SECONDS = 60.0
log = logging.getLogger("workers.audit")


def drift(row: ProductLedger) -> int:
    """Units one product's ledger does not account for (0 when it is conserved)."""
    return abs(row.stock_total - row.available - row.held - row.sold) + max(0, -row.available)


async def audit_once(engine: AsyncEngine) -> list[ProductLedger]:
    """Audit every product now, set the gauges, log each violation; the unconserved ledgers."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            rows = await ledgers(conn)
    bad = [r for r in rows if not r.conserved]
    AUDIT_PRODUCTS.set(len(rows))
    AUDIT_VIOLATIONS.set(len(bad))
    AUDIT_DRIFT.set(sum(drift(r) for r in bad))
    AUDIT_LAST_SUCCESS.set(time.time())
    for r in bad[:20]:
        log.error(
            "stock not conserved",
            extra={
                "product_id": r.product_id,
                "stock_total": r.stock_total,
                "available": r.available,
                "held": r.held,
                "sold": r.sold,
            },
        )
    return bad


def auditor(ctx: WorkerContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The background job of a worker: audit at start, then every AUDIT_INTERVAL_SECONDS."""

    async def audit_forever() -> None:
        while True:
            try:
                await audit_once(ctx.engine)
            except Exception as exc:  # the database may be away: the timestamp goes stale
                log.warning("audit failed", extra={"error": repr(exc)[:300]})
            await asyncio.sleep(AUDIT_INTERVAL_SECONDS)

    return [audit_forever]
