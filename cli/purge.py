"""`flashsale purge`: old rows a busy shop no longer needs, removed in bounded batches.

What goes (all older than --older-than, which may not be under the idempotency window):
- holds that expired, that no order refers to;
- webhook records (`payment_events`) that were resolved (applied, ignored, rejected) and whose
  order is not pending any more; one still waiting for its order (pending_order) stays;
- applied-restock records (`restocks`), the idempotency records of admin restocks.
Nothing else is touched: products, orders, active or converted holds, message failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli import ops
from shared.messages import utcnow
from shared.settings import get_settings

#: An Idempotency-Key, a webhook's idempotency_key and a restock's key are honoured at least this
#: long: a record younger than this is never purged, whatever --older-than says.
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Target:
    label: str
    table: str
    key: str
    #: the rows that may go; `:cutoff` is the age limit
    where: str


TARGETS = [
    Target(
        "expired holds (no order refers to them)",
        "holds",
        "id",
        "status = 'expired' AND expires_at < :cutoff AND created_at < :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.hold_id = holds.id)",
    ),
    Target(
        "webhook records (resolved, order not pending)",
        "payment_events",
        "idempotency_key",
        "result IN ('applied', 'ignored', 'rejected')"
        " AND received_at < :cutoff AND coalesce(resolved_at, received_at) < :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM orders o"
        " WHERE o.id = payment_events.order_id AND o.status = 'pending')",
    ),
    Target("applied-restock records", "restocks", "message_id", "applied_at < :cutoff"),
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(value: str) -> timedelta:
    """'36h', '30d', '2w', '90m' → a timedelta."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value.lower())
    if not found:
        raise typer.BadParameter("a number and a unit (s, m, h, d, w), e.g. 30d or 36h")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


async def count(engine: AsyncEngine, target: Target, cutoff: datetime) -> int:
    async with engine.connect() as conn:
        sql = f"SELECT count(*) FROM {target.table} WHERE {target.where}"
        return int((await conn.execute(text(sql), {"cutoff": cutoff})).scalar_one())


async def delete_batch(engine: AsyncEngine, target: Target, cutoff: datetime, size: int) -> int:
    """One bounded batch in its own short transaction; rows another transaction locks wait."""
    sql = (
        f"DELETE FROM {target.table} WHERE {target.key} IN ("
        f"SELECT {target.key} FROM {target.table} WHERE {target.where}"
        " LIMIT :size FOR UPDATE SKIP LOCKED)"
    )
    async with engine.begin() as conn:
        return int((await conn.execute(text(sql), {"cutoff": cutoff, "size": size})).rowcount)


async def purge(
    engine: AsyncEngine, cutoff: datetime, batch_size: int, execute: bool
) -> list[tuple[Target, int, int]]:
    """(target, rows found or deleted, batches) for each target."""
    done = []
    for target in TARGETS:
        if not execute:
            done.append((target, await count(engine, target, cutoff), 0))
            continue
        total = batches = 0
        while True:
            deleted = await delete_batch(engine, target, cutoff, batch_size)
            batches += 1
            total += deleted
            if deleted < batch_size:
                break
        done.append((target, total, batches))
    return done


def command(
    older_than: Annotated[
        str,
        typer.Option(
            help="Age of the rows to remove: a number and s, m, h, d or w; at least 24h "
            "(the idempotency window)"
        ),
    ] = "30d",
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows per delete (one transaction each)")
    ] = 1000,
    execute: Annotated[
        bool, typer.Option("--execute/--dry-run", help="Delete, or only count what would go")
    ] = False,
) -> None:
    """Remove expired holds, resolved webhook records and restock records past an age.

    Dry run by default: counts what would go. Never removes a hold an order refers to, a
    webhook record whose order is still pending or that waits for its order, or anything
    younger than the 24 h idempotency window. Rules: docs/operations.md, section 6.
    """
    age = parse_age(older_than)
    if age < IDEMPOTENCY_WINDOW:
        raise typer.BadParameter(
            "at least 24h: younger records still answer retries", param_hint="--older-than"
        )
    cutoff = utcnow() - age
    rows = ops.run(ops.with_engine(get_settings(), lambda e: purge(e, cutoff, batch_size, execute)))
    typer.echo(f"rows older than {cutoff:%Y-%m-%d %H:%M} UTC (--older-than {older_than}):")
    for target, n, batches in rows:
        how = f" in {batches} batch(es)" if execute else ""
        typer.echo(
            f"  {target.table:<15} {n:>10,} {'deleted' if execute else 'to delete'}"
            f"{how}  {target.label}"
        )
    if not execute:
        typer.echo(f"dry run: nothing deleted; --execute deletes in batches of {batch_size}")
