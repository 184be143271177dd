"""Inventory handler: load → decide → save with conditional SQL → commit → publish follow-ups."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topology
from shared.db.tables import holds, orders, products, restocks
from shared.messages import ExpireHold, ExpireHolds, ExpireOrder, Level, Message, utcnow
from shared.settings import Settings
from workers.inventory import domain
from workers.inventory.domain import InventoryCommand

log = logging.getLogger("workers.inventory")


class ConcurrentWriter(Exception):
    """A conditional statement matched no row: another consumer wrote this product meanwhile."""


async def load(
    conn: AsyncConnection, commands: Sequence[InventoryCommand], hold_ttl: timedelta, now: datetime
) -> domain.Stock:
    """Everything `decide` may look at for this batch, read in the same transaction."""
    product_ids = {c.product_id for c in commands}
    hold_ids = {c.hold_id for c in commands if isinstance(c, domain.PlaceHold | domain.ExpireHold)}
    keys = {
        (c.client_id, c.idempotency_key)
        for c in commands
        if isinstance(c, domain.PlaceHold) and c.idempotency_key is not None
    }
    order_ids = {
        c.order_id for c in commands if isinstance(c, domain.ReleaseOrderStock | domain.ExpireOrder)
    }
    stock = domain.Stock(products={}, hold_ttl=hold_ttl)

    rows = await conn.execute(select(products).where(products.c.id.in_(product_ids)))
    for p in rows:
        stock.products[p.id] = domain.Product(
            p.id,
            p.stock_total,
            p.available,
            p.max_per_customer,
            p.sale_starts_at,
            p.sale_ends_at,
        )
    if hold_ids or keys:
        rows = await conn.execute(
            select(holds).where(
                or_(
                    holds.c.id.in_(hold_ids),
                    tuple_(holds.c.client_id, holds.c.idempotency_key).in_(keys),
                )
            )
        )
        for h in rows:
            hold = domain.Hold(
                h.id,
                h.product_id,
                h.qty,
                h.status,
                h.expires_at,
                h.customer_id,
                h.idempotency_key,
                h.request_hash,
                h.client_id,
            )
            stock.holds[h.id] = hold
            if h.idempotency_key is not None:
                stock.keyed_holds[(h.client_id, h.idempotency_key)] = hold
    restock_ids = {c.message_id for c in commands if isinstance(c, domain.Restock)}
    if restock_ids:
        applied = await conn.execute(
            select(restocks.c.message_id).where(restocks.c.message_id.in_(restock_ids))
        )
        stock.applied_restocks.update(applied.scalars())
    if order_ids:
        rows = await conn.execute(select(orders).where(orders.c.id.in_(order_ids)))
        for o in rows:
            stock.orders[o.id] = domain.Order(o.id, o.product_id, o.qty, o.status, o.cancel_reason)
    customers = {
        (c.product_id, c.client_id, c.customer_id)
        for c in commands
        if isinstance(c, domain.PlaceHold) and c.customer_id is not None
    }
    for product_id, client_id, customer_id in customers:
        stock.customer_usage[(product_id, client_id, customer_id)] = await _customer_usage(
            conn, product_id, client_id, customer_id, now
        )
    return stock


async def _customer_usage(
    conn: AsyncConnection, product_id: int, client_id: str, customer_id: str, now: datetime
) -> int:
    held = select(func.coalesce(func.sum(holds.c.qty), 0)).where(
        holds.c.product_id == product_id,
        holds.c.client_id == client_id,
        holds.c.customer_id == customer_id,
        holds.c.status == "active",
        holds.c.expires_at > now,
    )
    ordered = select(func.coalesce(func.sum(orders.c.qty), 0)).where(
        orders.c.product_id == product_id,
        orders.c.client_id == client_id,
        orders.c.customer_id == customer_id,
        orders.c.status.in_(("pending", "paid")),
    )
    total = (await conn.execute(select(held.scalar_subquery() + ordered.scalar_subquery()))).one()
    return int(total[0])


async def _rows(conn: AsyncConnection, statement: object, expected: int) -> None:
    result = await conn.execute(statement)  # type: ignore[call-overload]
    if result.rowcount != expected:
        raise ConcurrentWriter(str(statement))


@dataclass
class _ProductDelta:
    available: int = 0
    stock_total: int = 0
    refused: int = 0


async def save(conn: AsyncConnection, decisions: Sequence[domain.Decision]) -> None:
    """Write a batch's decisions: one conditional update per product, bulk inserts.

    Every stock change is conditional (`available + delta >= 0`, `status = 'active'`,
    `status = 'pending'`) and the CHECK constraint backs it, so even a second consumer during
    a failover cannot oversell: its conflicting batch fails and is decided again.
    """
    now = func.now()
    deltas: dict[int, _ProductDelta] = defaultdict(_ProductDelta)
    new_holds: list[dict[str, object]] = []
    expired: list[uuid.UUID] = []
    new_restocks: list[dict[str, object]] = []
    for d in decisions:
        cmd = d.command
        if isinstance(d, domain.HoldCreated):
            h = d.hold
            deltas[h.product_id].available -= h.qty
            new_holds.append(
                {
                    "id": h.hold_id,
                    "product_id": h.product_id,
                    "qty": h.qty,
                    "customer_id": h.customer_id,
                    "status": "active",
                    "expires_at": h.expires_at,
                    "idempotency_key": h.idempotency_key,
                    "request_hash": h.request_hash,
                    "client_id": h.client_id,
                }
            )
        elif isinstance(d, domain.HoldExpired):
            deltas[d.hold.product_id].available += d.hold.qty
            expired.append(d.hold.hold_id)
        elif isinstance(d, domain.Restocked):
            assert isinstance(cmd, domain.Restock)
            deltas[cmd.product_id].available += cmd.add
            deltas[cmd.product_id].stock_total += cmd.add
            # a second delivery conflicts on the key, rolls back, and is decided again
            new_restocks.append(
                {"message_id": cmd.message_id, "product_id": cmd.product_id, "added": cmd.add}
            )
        elif isinstance(d, domain.OrderReleased):
            o = d.order
            deltas[o.product_id].available += o.qty
            await _rows(
                conn,
                update(orders)
                .where(orders.c.id == o.order_id, orders.c.status == "pending")
                .values(
                    status="cancelled",
                    cancel_reason=d.reason,
                    cancelled_by=d.cancelled_by,
                    updated_at=now,
                ),
                1,
            )
        elif isinstance(d, domain.HoldDenied) and d.reason not in (
            "idempotency_key_reused",
            "product_not_found",  # no row to count it on
        ):
            deltas[cmd.product_id].refused += 1
    if expired:
        await _rows(
            conn,
            update(holds)
            .where(holds.c.id.in_(expired), holds.c.status == "active")
            .values(status="expired", updated_at=now),
            len(expired),
        )
    if new_holds:
        await conn.execute(holds.insert(), new_holds)
    if new_restocks:
        await conn.execute(restocks.insert(), new_restocks)
    for product_id, delta in sorted(deltas.items()):  # one lock order for every writer
        values: dict[str, object] = {"holds_refused": products.c.holds_refused + delta.refused}
        if delta.available or delta.stock_total:
            values.update(
                available=products.c.available + delta.available,
                stock_total=products.c.stock_total + delta.stock_total,
                updated_at=now,
            )
        await _rows(
            conn,
            update(products)
            .where(products.c.id == product_id, products.c.available + delta.available >= 0)
            .values(**values),
            1,
        )


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
    clock: Callable[[], datetime] = utcnow,
    attempts: int = 5,
) -> Committed:
    """Decide and commit a batch; the caller publishes its expiries and levels afterwards."""
    ttl = timedelta(seconds=settings.hold_ttl_seconds)
    for attempt in range(1, attempts + 1):
        now = clock()
        try:
            async with engine.begin() as conn:
                stock = await load(conn, commands, ttl, now)
                decisions = domain.decide(stock, commands, now)
                await save(conn, decisions)
            break
        except (ConcurrentWriter, IntegrityError) as exc:
            # Only while two consumers overlap (failover): reload and decide again.
            log.warning(
                "conflicting write, retrying the batch",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )
            if attempt == attempts:
                raise
    return Committed(
        decisions,
        {pid: level_of(p) for pid, p in stock.products.items()},
        [
            d.hold
            for d in decisions
            if isinstance(d, domain.HoldCreated | domain.HoldReplayed) and d.hold.status == "active"
        ],
    )


def level_of(product: domain.Product) -> Level:
    """What a gateway needs to refuse a hold of this product without asking."""
    return Level(
        available=product.available,
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
