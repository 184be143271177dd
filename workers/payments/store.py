"""The payments worker's reads and writes: the event under its key, the order it is about.

Every write is conditional: an event's result is set only while it has none (or is waiting for
its order), and an order is paid only while pending and no failed payment of it is applied.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import locks
from shared.db.tables import holds, orders, payment_events
from shared.holds import hold_is_live
from shared.messages import RecordPayment
from workers.payments import domain


async def record_event(conn: AsyncConnection, cmd: RecordPayment) -> domain.EventView | None:
    """Store the event under its key; None if it is new, else the event stored before."""
    inserted = await conn.execute(
        pg_insert(payment_events)
        .values(
            idempotency_key=cmd.idempotency_key,
            payload_hash=cmd.payload_hash,
            payload=cmd.payload,
            order_id=cmd.order_id,
            hold_id=cmd.hold_id,
            status=cmd.status,
            amount_cents=cmd.amount_cents,
            provider_reference=cmd.provider_reference,
        )
        .on_conflict_do_nothing(index_elements=[payment_events.c.idempotency_key])
        .returning(payment_events.c.idempotency_key)
    )
    if inserted.first() is not None:
        return None
    return await stored_event(conn, cmd.idempotency_key)


async def stored_event(conn: AsyncConnection, key: str) -> domain.EventView:
    """The event stored under `key`, as it is now."""
    stored = (
        (await conn.execute(select(payment_events).where(payment_events.c.idempotency_key == key)))
        .mappings()
        .one()
    )
    return domain.EventView(stored["payload_hash"], stored["result"], stored["reason"])


def _unresolved() -> Any:
    """An event whose story has not ended: no result yet, or waiting for its order."""
    return payment_events.c.result.is_(None) | (payment_events.c.result == "pending_order")


async def lock(conn: AsyncConnection, cmd: RecordPayment) -> None:
    """The lock the orders worker takes too: a webhook and a conversion never miss each other."""
    if cmd.order_id is not None:
        await locks.lock(conn, "order", cmd.order_id)
    else:
        assert cmd.hold_id is not None
        await locks.lock(conn, "hold", cmd.hold_id)


async def find_order(conn: AsyncConnection, cmd: RecordPayment) -> domain.OrderView | None:
    where = (
        orders.c.id == cmd.order_id if cmd.order_id is not None else orders.c.hold_id == cmd.hold_id
    )
    row: RowMapping | None = (await conn.execute(select(orders).where(where))).mappings().first()
    if row is None:
        return None
    return domain.OrderView(
        order_id=row["id"],
        product_id=row["product_id"],
        status=row["status"],
        amount_cents=row["amount_cents"],
        cancelled_by=row["cancelled_by"],
    )


async def _hold_can_still_convert(conn: AsyncConnection, cmd: RecordPayment, now: datetime) -> bool:
    if cmd.hold_id is None:
        return True  # an order id we have not seen yet: it may still be created
    hold = (await conn.execute(select(holds).where(holds.c.id == cmd.hold_id))).mappings().first()
    if hold is None:
        return True
    return hold_is_live(hold["status"], hold["expires_at"], now)


def _failed_applied(order_id: uuid.UUID) -> Any:
    return select(payment_events.c.idempotency_key).where(
        payment_events.c.order_id == order_id,
        payment_events.c.status == "failed",
        payment_events.c.result == "applied",
    )


async def load(conn: AsyncConnection, cmd: RecordPayment, now: datetime) -> domain.PaymentState:
    """The order, and what decides for an event without one (its hold) or with one (a failed
    payment applied already)."""
    order = await find_order(conn, cmd)
    if order is None:
        return domain.PaymentState(
            None, hold_can_still_convert=await _hold_can_still_convert(conn, cmd, now)
        )
    failed = (await conn.execute(_failed_applied(order.order_id).limit(1))).first()
    return domain.PaymentState(order, failure_applied=failed is not None)


async def set_result(
    conn: AsyncConnection,
    key: str,
    result: str,
    order_id: uuid.UUID | None,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """The event's result, if it has none yet (or was waiting for its order): whether it did."""
    done = await conn.execute(
        update(payment_events)
        .where(payment_events.c.idempotency_key == key, _unresolved())
        .values(result=result, reason=reason, order_id=order_id, resolved_at=now)
    )
    return bool(done.rowcount == 1)


async def wait_for_order(conn: AsyncConnection, key: str) -> bool:
    """Keep the event until its order is created (the orders worker settles it then), unless
    its story has ended meanwhile: whether it did."""
    waiting = await conn.execute(
        update(payment_events)
        .where(payment_events.c.idempotency_key == key, _unresolved())
        .values(result="pending_order")
    )
    return bool(waiting.rowcount == 1)


async def mark_paid(conn: AsyncConnection, order_id: uuid.UUID, now: datetime) -> bool:
    """Pay a pending order, unless a failed payment of it was applied meanwhile (the domain
    rule, in SQL): whether it did."""
    paid = await conn.execute(
        update(orders)
        .where(
            orders.c.id == order_id,
            orders.c.status == "pending",
            ~_failed_applied(order_id).exists(),
        )
        .values(status="paid", updated_at=now)
    )
    return bool(paid.rowcount == 1)


async def releasing(conn: AsyncConnection, key: str, order_id: uuid.UUID) -> bool:
    """A failed payment on its way to cancel the order: committed with no result, so that a
    crash before the partition answers resumes from here on the next delivery. Not when its
    story has ended meanwhile (another delivery of it, resuming too, applied it and wrote the
    result after this one read the event): whether it is."""
    going = await conn.execute(
        update(payment_events)
        .where(payment_events.c.idempotency_key == key, _unresolved())
        .values(order_id=order_id, result=None)
    )
    return bool(going.rowcount == 1)
