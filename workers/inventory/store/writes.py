"""A partition's writes: every decision of a batch in one conditional statement (`save`), or
the rush's new holds in one statement committed on its own (`place`)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from workers.inventory import domain
from workers.inventory.domain import InventoryCommand


class ConcurrentWriter(Exception):
    """A conditional statement matched no row: another consumer wrote this product meanwhile."""


#: The new holds of a batch, columns $1 to $8 (`_new_hold`), in both writes below.
_INSERT_HOLDS = """
  INSERT INTO holds (id, product_id, qty, customer_id, status, expires_at, idempotency_key,
                     request_hash, client_id)
  SELECT id, product_id, qty, customer_id, 'active', expires_at, key, hash, client
  FROM unnest($1::uuid[], $2::bigint[], $3::int[], $4::text[], $5::timestamptz[], $6::text[],
              $7::text[], $8::text[]) AS n(id, product_id, qty, customer_id, expires_at, key,
                                            hash, client)
"""

#: Every write of a batch in one statement; the counts say whether each matched in full.
_SAVE = f"""
WITH new_holds AS (
{_INSERT_HOLDS}  RETURNING 1
), expired AS (
  UPDATE holds SET status = 'expired', updated_at = now()
  WHERE id = ANY($9::uuid[]) AND status = 'active'
  RETURNING 1
), cancelled AS (
  UPDATE orders o SET status = 'cancelled', cancel_reason = c.reason, cancelled_by = c.by,
                      updated_at = now()
  FROM unnest($10::uuid[], $11::text[], $12::text[]) AS c(id, reason, by)
  WHERE o.id = c.id AND o.status = 'pending'
  RETURNING 1
), restocked AS (
  INSERT INTO restocks (message_id, product_id, added)
  SELECT * FROM unnest($13::uuid[], $14::bigint[], $15::int[])
  RETURNING 1
), stocked AS (
  UPDATE products p
  SET available = p.available + d.available,
      stock_total = p.stock_total + d.stock_total,
      holds_refused = p.holds_refused + d.refused,
      version = p.version + CASE WHEN d.available <> 0 OR d.stock_total <> 0 THEN 1 ELSE 0 END,
      updated_at = CASE WHEN d.available <> 0 OR d.stock_total <> 0 THEN now()
                        ELSE p.updated_at END
  FROM unnest($16::bigint[], $17::int[], $18::int[], $19::bigint[])
       AS d(id, available, stock_total, refused)
  WHERE p.id = d.id AND p.available + d.available >= 0
  RETURNING 1
)
SELECT (SELECT count(*) FROM new_holds), (SELECT count(*) FROM expired),
       (SELECT count(*) FROM cancelled), (SELECT count(*) FROM restocked),
       (SELECT count(*) FROM stocked)
"""


#: The rush's batch in one statement, committed on its own: the products move only from the
#: version the batch was decided on, and the holds are written only if every product moved.
_PLACE = f"""
WITH stocked AS (
  UPDATE products p
  SET available = p.available + d.available,
      holds_refused = p.holds_refused + d.refused,
      version = p.version + CASE WHEN d.available <> 0 THEN 1 ELSE 0 END,
      updated_at = CASE WHEN d.available <> 0 THEN now() ELSE p.updated_at END
  FROM unnest($9::bigint[], $10::int[], $11::bigint[], $12::bigint[])
       AS d(id, available, refused, version)
  WHERE p.id = d.id AND p.version = d.version AND p.available + d.available >= 0
  RETURNING 1
), new_holds AS (
{_INSERT_HOLDS}  WHERE (SELECT count(*) FROM stocked) = cardinality($9::bigint[])
  RETURNING 1
)
SELECT (SELECT count(*) FROM new_holds), (SELECT count(*) FROM stocked)
"""


def placeable(
    commands: Sequence[InventoryCommand], known: dict[int, domain.Product]
) -> dict[int, domain.Product] | None:
    """The products a batch of new holds is decided on without reading them, or None when it
    needs the locked read: anything but a hold, an Idempotency-Key (its earlier hold must be
    looked up), a product not known or with a per-customer limit (its usage must be read)."""
    products: dict[int, domain.Product] = {}
    for c in commands:
        if not isinstance(c, domain.PlaceHold) or c.idempotency_key is not None:
            return None
        product = products.get(c.product_id) or known.get(c.product_id)
        if product is None or product.max_per_customer is not None:
            return None
        products[c.product_id] = product
    return products


async def place(
    pg: asyncpg.Connection,
    decisions: Sequence[domain.Decision],
    decided_on: dict[int, domain.Product],
) -> None:
    """Write a batch `placeable` let through, as one statement outside any transaction;
    raise ConcurrentWriter, having written nothing, if a product is no longer as decided on."""
    deltas: dict[int, list[int]] = {pid: [0, 0] for pid in decided_on}  # available, refused
    new_holds: list[tuple[Any, ...]] = []
    for d in decisions:
        if isinstance(d, domain.HoldPlaced):
            deltas[d.hold.product_id][0] -= d.hold.qty
            new_holds.append(_new_hold(d.hold))
        elif isinstance(d, domain.HoldRefused):
            deltas[d.command.product_id][1] += 1 if _counted_refusal(d) else 0
        elif not isinstance(d, domain.Dropped):
            raise AssertionError(f"not a decision of new holds: {d!r}")
    products = sorted(
        (pid, available, refused, decided_on[pid].version)
        for pid, (available, refused) in deltas.items()
        if available or refused
    )
    if not products:
        return
    counts = await pg.fetchrow(_PLACE, *_columns(new_holds, 8), *_columns(products, 4))
    assert counts is not None
    if tuple(counts) != (len(new_holds), len(products)):
        raise ConcurrentWriter(f"placed {tuple(counts)} of {(len(new_holds), len(products))}")


def _counted_refusal(d: domain.Decision) -> bool:
    """A refusal counted on its product's row (`holds_refused`)."""
    return isinstance(d, domain.HoldRefused) and d.reason not in (
        "idempotency_key_reused",
        "product_not_found",  # no row to count it on
    )


def _new_hold(h: domain.Hold) -> tuple[Any, ...]:
    return (
        h.hold_id,
        h.product_id,
        h.qty,
        h.customer_id,
        h.expires_at,
        h.idempotency_key,
        h.request_hash,
        h.client_id,
    )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def save(pg: asyncpg.Connection, decisions: Sequence[domain.Decision]) -> None:
    """Write a batch's decisions in one conditional statement; raise if any part fell short."""
    deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # available, total, refused
    new_holds: list[tuple[Any, ...]] = []
    expired: list[uuid.UUID] = []
    cancelled: list[tuple[Any, ...]] = []
    restocked: list[tuple[Any, ...]] = []
    for d in decisions:
        cmd = d.command
        if isinstance(d, domain.HoldPlaced):
            h = d.hold
            deltas[h.product_id][0] -= h.qty
            new_holds.append(_new_hold(h))
        elif isinstance(d, domain.HoldExpired):
            deltas[d.hold.product_id][0] += d.hold.qty
            expired.append(d.hold.hold_id)
        elif isinstance(d, domain.Restocked):
            assert isinstance(cmd, domain.Restock)
            deltas[cmd.product_id][0] += cmd.add
            deltas[cmd.product_id][1] += cmd.add
            # a second delivery conflicts on the key, rolls back, and is decided again
            restocked.append((cmd.message_id, cmd.product_id, cmd.add))
        elif isinstance(d, domain.StockReleased):
            deltas[d.order.product_id][0] += d.order.qty
            cancelled.append((d.order.order_id, d.reason, d.cancelled_by))
        elif _counted_refusal(d):
            deltas[cmd.product_id][2] += 1
    if not (new_holds or expired or cancelled or restocked or deltas):
        return
    products = sorted((pid, *delta) for pid, delta in deltas.items())  # one lock order
    counts = await pg.fetchrow(
        _SAVE,
        *_columns(new_holds, 8),
        expired,
        *_columns(cancelled, 3),
        *_columns(restocked, 3),
        *_columns(products, 4),
    )
    assert counts is not None
    wanted = (len(new_holds), len(expired), len(cancelled), len(restocked), len(products))
    if tuple(counts) != wanted:
        raise ConcurrentWriter(f"wrote {tuple(counts)} of {wanted} rows")
