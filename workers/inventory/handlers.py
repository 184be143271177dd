"""Inventory handler: load → decide → save with conditional SQL → commit → publish follow-ups."""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topology
from shared.db.tables import holds, orders
from shared.messages import ExpireHold, ExpireHolds, ExpireOrder, Level, Message, utcnow
from shared.settings import Settings
from workers.inventory import domain, store
from workers.inventory.domain import InventoryCommand

log = logging.getLogger("workers.inventory")


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled SQLAlchemy one (the hot path's statements)."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


@dataclass
class Committed:
    """A committed batch: its decisions and what to publish after the commit."""

    decisions: list[domain.Decision]
    #: every product the batch looked at, as it stands after the commit
    levels: dict[int, Level]
    #: holds whose expiry to (re)schedule: created or replayed and still active
    to_expire: list[domain.Hold]


async def handle(
    engine: AsyncEngine,
    settings: Settings,
    commands: Sequence[InventoryCommand],
    *,
    known: dict[int, domain.Product] | None = None,
    clock: Callable[[], datetime] = utcnow,
    attempts: int = 5,
) -> Committed:
    """Decide and commit a batch; the caller publishes its expiries and levels afterwards.

    `known`: the partition's products as its own commits left them, kept up to date here (a
    product leaves it when a batch fails); a batch of new holds on known products is decided on
    them and written in one round trip (store.place), everything else reads them locked first.
    """
    ttl = timedelta(seconds=settings.hold_ttl_seconds)
    placed_before = False
    cache = known if known is not None else {}
    for attempt in range(1, attempts + 1):
        now = clock()
        quick = None if placed_before else store.placeable(commands, cache)
        try:
            async with engine.connect() as conn:
                pg = await driver_connection(conn)
                try:
                    if quick is not None:
                        stock = domain.Stock(products=dict(quick), hold_ttl=ttl)
                        loaded = quick
                        decisions = domain.decide(stock, commands, now)
                        await store.place(pg, decisions, quick)
                    else:
                        async with pg.transaction():
                            stock = await store.load(
                                pg, commands, ttl, now, placed_before=placed_before
                            )
                            loaded = dict(stock.products)
                            decisions = domain.decide(stock, commands, now)
                            await store.save(pg, decisions)
                except BaseException:
                    for pid in {c.product_id for c in commands}:
                        cache.pop(pid, None)  # read again, locked, next time
                    if pg.is_closed():  # never hand a dead connection back to the pool
                        await conn.invalidate()
                    raise
            break
        except (store.ConcurrentWriter, asyncpg.IntegrityConstraintViolationError) as exc:
            # A redelivered hold (its id exists), or two consumers overlapping during a
            # failover: look everything up and decide again.
            placed_before = True
            log.warning(
                "conflicting write, retrying the batch",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )
            if attempt == attempts:
                raise
    for pid, p in stock.products.items():
        cache[pid] = committed(p, loaded.get(pid))
    return Committed(
        decisions,
        {pid: level_of(cache[pid]) for pid in stock.products},
        [
            d.hold
            for d in decisions
            if isinstance(d, domain.HoldPlaced | domain.HoldReplayed) and d.hold.status == "active"
        ],
    )


def committed(product: domain.Product, loaded: domain.Product | None) -> domain.Product:
    """The product as the commit left it: its version is bumped by the save if stock_total or
    available changed since `loaded`."""
    changed = loaded is not None and (loaded.available, loaded.stock_total) != (
        product.available,
        product.stock_total,
    )
    return dataclasses.replace(product, version=product.version + 1) if changed else product


def level_of(product: domain.Product) -> Level:
    """A committed product as gateways keep it: its stock, its version, and what they need to
    refuse a hold without asking."""
    return Level(
        available=product.available,
        stock_total=product.stock_total,
        version=product.version,
        on_sale_from=product.sale_starts_at,
        on_sale_until=product.sale_ends_at,
        limited=product.max_per_customer is not None,
    )


def replies(decisions: Sequence[domain.Decision]) -> list[Message | None]:
    """The reply to send for each command (None: nothing to answer)."""
    return [d.reply for d in decisions]


def expiries_of(holds: Sequence[domain.Hold]) -> ExpireHolds:
    """One message carrying the expiry of each hold, as the delay queue will hand it back."""
    return ExpireHolds(holds=[expiry_for(h) for h in holds])


def expiry_for(hold: domain.Hold) -> ExpireHold:
    """The expiry message of a hold, as the delay queue will hand it back."""
    return ExpireHold(hold_id=hold.hold_id, product_id=hold.product_id)


async def sweep(
    engine: AsyncEngine,
    settings: Settings,
    publish: Callable[[Message, int], Awaitable[None]],
    now: datetime,
) -> tuple[int, int]:
    """Re-issue expiries, through the partitions, for whatever is overdue: the holds of one
    partition as one ExpireHolds, each unpaid order as an ExpireOrder."""
    grace = timedelta(seconds=settings.sweep_grace_seconds)
    late_holds, late_orders = await overdue(engine, grace, now)
    by_partition: dict[str, list[ExpireHold]] = defaultdict(list)
    for hold_id, product_id in late_holds:
        key = topology.product_routing_key(product_id, settings.partitions)
        by_partition[key].append(ExpireHold(hold_id=hold_id, product_id=product_id))
    for expiries in by_partition.values():
        await publish(ExpireHolds(holds=expiries), expiries[0].product_id)
    for order_id, product_id in late_orders:
        await publish(ExpireOrder(order_id=order_id, product_id=product_id), product_id)
    return len(late_holds), len(late_orders)


async def overdue(
    engine: AsyncEngine, grace: timedelta, now: datetime, limit: int = 1000
) -> tuple[list[tuple[object, int]], list[tuple[object, int]]]:
    """Holds and unpaid online orders whose expiry message is late by more than `grace`."""
    cutoff = now - grace
    async with engine.connect() as conn:
        late_holds = await conn.execute(
            select(holds.c.id, holds.c.product_id)
            .where(holds.c.status == "active", holds.c.expires_at < cutoff)
            .limit(limit)
        )
        late_orders = await conn.execute(
            select(orders.c.id, orders.c.product_id)
            .where(
                and_(
                    orders.c.status == "pending",
                    orders.c.pay_by.is_not(None),
                    orders.c.pay_by < cutoff,
                )
            )
            .limit(limit)
        )
        return [tuple(r) for r in late_holds], [tuple(r) for r in late_orders]
