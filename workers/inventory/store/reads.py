"""A partition's reads: everything `decide` may look at for a batch, one statement per kind
of thing the batch needs (products always; holds, orders, restocks and customer usage when it
has them), in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg  # type: ignore[import-untyped]

from workers.inventory import domain
from workers.inventory.domain import InventoryCommand

#: Locked in id order: a second consumer during a failover waits here, then reads what the
#: first one committed, instead of deciding on stale stock.
_PRODUCTS = """
SELECT id, stock_total, available, max_per_customer, sale_starts_at, sale_ends_at, version
FROM products WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
"""
_HOLD_COLUMNS = """
SELECT id, product_id, qty, status, expires_at, customer_id, idempotency_key, request_hash,
       client_id
FROM holds
"""
#: Two statements, not one with OR: each is an index look-up (the OR would scan the table).
_HOLDS_BY_ID = _HOLD_COLUMNS + "WHERE id = ANY($1::uuid[])"
_HOLDS_BY_KEY = (
    _HOLD_COLUMNS
    + "WHERE idempotency_key IS NOT NULL AND (client_id, idempotency_key) IN "
    + "(SELECT * FROM unnest($1::text[], $2::text[]))"
)
_RESTOCKS = "SELECT message_id FROM restocks WHERE message_id = ANY($1::uuid[])"
_ORDERS = """
SELECT id, product_id, qty, status, cancel_reason FROM orders WHERE id = ANY($1::uuid[])
"""
#: Units a customer of a storefront has in live holds plus pending or paid orders, per product.
_USAGE = """
SELECT k.product_id, k.client_id, k.customer_id,
       (SELECT coalesce(sum(h.qty), 0) FROM holds h
         WHERE h.product_id = k.product_id AND h.client_id = k.client_id
           AND h.customer_id = k.customer_id AND h.status = 'active' AND h.expires_at > $4)
     + (SELECT coalesce(sum(o.qty), 0) FROM orders o
         WHERE o.product_id = k.product_id AND o.client_id = k.client_id
           AND o.customer_id = k.customer_id AND o.status IN ('pending', 'paid'))
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS k(product_id, client_id, customer_id)
"""


async def load(
    pg: asyncpg.Connection,
    commands: Sequence[InventoryCommand],
    hold_ttl: timedelta,
    now: datetime,
    *,
    placed_before: bool,
) -> domain.Stock:
    """Everything `decide` may look at for this batch, read in its transaction.

    Without `placed_before`, a PlaceHold's own id is not looked up: the gateway makes a new
    random one per request, so only a redelivery can find it, and its insert then conflicts and
    the batch is decided again with `placed_before` (the same holds, now found and replayed).
    """
    stock = domain.Stock(products={}, hold_ttl=hold_ttl)
    for p in await pg.fetch(_PRODUCTS, list({c.product_id for c in commands})):
        stock.products[p["id"]] = domain.Product(
            p["id"],
            p["stock_total"],
            p["available"],
            p["max_per_customer"],
            p["sale_starts_at"],
            p["sale_ends_at"],
            p["version"],
        )
    hold_ids = {c.hold_id for c in commands if isinstance(c, domain.ExpireHold)}
    if placed_before:
        hold_ids |= {c.hold_id for c in commands if isinstance(c, domain.PlaceHold)}
    keyed = {
        (c.client_id, c.idempotency_key)
        for c in commands
        if isinstance(c, domain.PlaceHold) and c.idempotency_key is not None
    }
    found = await pg.fetch(_HOLDS_BY_ID, list(hold_ids)) if hold_ids else []
    if keyed:
        clients, keys = [k[0] for k in keyed], [k[1] for k in keyed]
        found += await pg.fetch(_HOLDS_BY_KEY, clients, keys)
    for h in found:
        hold = domain.Hold(
            h["id"],
            h["product_id"],
            h["qty"],
            h["status"],
            h["expires_at"],
            h["customer_id"],
            h["idempotency_key"],
            h["request_hash"],
            h["client_id"],
        )
        stock.holds[hold.hold_id] = hold
        if hold.idempotency_key is not None:
            stock.keyed_holds[(hold.client_id, hold.idempotency_key)] = hold
    restock_ids = [c.message_id for c in commands if isinstance(c, domain.Restock)]
    if restock_ids:
        stock.applied_restocks.update(
            r["message_id"] for r in await pg.fetch(_RESTOCKS, restock_ids)
        )
    order_ids = [
        c.order_id for c in commands if isinstance(c, domain.ReleaseOrderStock | domain.ExpireOrder)
    ]
    if order_ids:
        for o in await pg.fetch(_ORDERS, order_ids):
            stock.orders[o["id"]] = domain.Order(
                o["id"], o["product_id"], o["qty"], o["status"], o["cancel_reason"]
            )
    customers = {
        (c.product_id, c.client_id, c.customer_id)
        for c in commands
        if isinstance(c, domain.PlaceHold) and c.customer_id is not None
    }
    if customers:
        columns = [list(column) for column in zip(*customers, strict=True)]
        for u in await pg.fetch(_USAGE, *columns, now):
            stock.customer_usage[(u[0], u[1], u[2])] = int(u[3])
    return stock
