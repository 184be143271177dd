"""Payments handler: record the event by its key first, then move the order along.

A failed payment cancels the order through the product's inventory partition (stock has a
single writer): the event is committed first with no result, the partition is asked, and the
result is written afterwards. A crash in between leaves the result empty, and the redelivered
webhook resumes from there.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topology
from shared.bus import Bus
from shared.db import locks
from shared.db.tables import holds, orders, payment_events
from shared.holds import hold_is_live
from shared.messages import OrderCancelled, PaymentRecorded, RecordPayment, ReleaseOrderStock
from shared.settings import Settings
from workers.payments import domain

log = logging.getLogger("workers.payments")
_cancelled = TypeAdapter(OrderCancelled)


def _reply(
    cmd: RecordPayment, result: str, order: Any | None, reason: str | None = None
) -> PaymentRecorded:
    return PaymentRecorded(
        idempotency_key=cmd.idempotency_key,
        result=result,
        reason=reason,
        order_id=order.id if order is not None else cmd.order_id,
        order_status=order.status if order is not None else None,
        product_id=order.product_id if order is not None else None,
    )


async def _find_order(conn: AsyncConnection, cmd: RecordPayment) -> Any | None:
    if cmd.order_id is not None:
        where = orders.c.id == cmd.order_id
    else:
        where = orders.c.hold_id == cmd.hold_id
    return (await conn.execute(select(orders).where(where))).first()


async def _hold_can_still_convert(conn: AsyncConnection, cmd: RecordPayment, now: datetime) -> bool:
    if cmd.hold_id is None:
        return True  # an order id we have not seen yet: it may still be created
    hold = (await conn.execute(select(holds).where(holds.c.id == cmd.hold_id))).first()
    if hold is None:
        return True
    return hold_is_live(hold.status, hold.expires_at, now)


def _failed_applied(order_id: Any) -> Any:
    return select(payment_events.c.idempotency_key).where(
        payment_events.c.order_id == order_id,
        payment_events.c.status == "failed",
        payment_events.c.result == "applied",
    )


async def _failure_applied(conn: AsyncConnection, order_id: Any) -> bool:
    """Whether a failed payment of this order is already applied (its release may be queued)."""
    return (await conn.execute(_failed_applied(order_id).limit(1))).first() is not None


async def _set_result(
    conn: AsyncConnection,
    key: str,
    result: str,
    order_id: Any,
    now: datetime,
    reason: str | None = None,
) -> bool:
    done = await conn.execute(
        update(payment_events)
        .where(
            payment_events.c.idempotency_key == key,
            payment_events.c.result.is_(None) | (payment_events.c.result == "pending_order"),
        )
        .values(result=result, reason=reason, order_id=order_id, resolved_at=now)
    )
    return bool(done.rowcount == 1)


async def record(
    engine: AsyncEngine, bus: Bus, settings: Settings, cmd: RecordPayment, now: datetime
) -> PaymentRecorded:
    """Deduplicate by idempotency key, then apply the outcome to the order exactly once."""
    async with engine.begin() as conn:
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
        if inserted.first() is None:
            ev = (
                await conn.execute(
                    select(payment_events).where(
                        payment_events.c.idempotency_key == cmd.idempotency_key
                    )
                )
            ).one()
            if ev.payload_hash != cmd.payload_hash:
                return PaymentRecorded(idempotency_key=cmd.idempotency_key, result="key_reused")
            if ev.result in ("applied", "ignored", "rejected"):
                return _reply(cmd, "duplicate", await _find_order(conn, cmd), ev.reason)
            # pending_order, or an earlier try that stopped half-way: look again
        if cmd.order_id is not None:
            await locks.lock(conn, "order", cmd.order_id)
        else:
            assert cmd.hold_id is not None
            await locks.lock(conn, "hold", cmd.hold_id)
        order = await _find_order(conn, cmd)
        if order is not None and order.cancelled_by == f"payment:{cmd.idempotency_key}":
            # This very event cancelled it (another delivery got there first): same result.
            first = await _set_result(conn, cmd.idempotency_key, "applied", order.id, now)
            return _reply(cmd, "applied" if first else "duplicate", order)
        can_convert = order is not None or await _hold_can_still_convert(conn, cmd, now)
        failure_applied = order is not None and await _failure_applied(conn, order.id)
        action = domain.decide_payment(
            order.status if order else None,
            can_convert,
            cmd.status,
            failure_applied,
            paid_cents=cmd.amount_cents,
            order_cents=order.amount_cents if order else None,
        )
        if action == "pending_order":
            await conn.execute(
                update(payment_events)
                .where(payment_events.c.idempotency_key == cmd.idempotency_key)
                .values(result="pending_order")
            )
            return _reply(cmd, "pending_order", None)
        if action == "rejected":
            assert order is not None
            reason = domain.AMOUNT_MISMATCH
            await _set_result(conn, cmd.idempotency_key, "rejected", order.id, now, reason)
            return _reply(cmd, "rejected", order, reason)
        if action == "ignored":
            await _set_result(
                conn, cmd.idempotency_key, "ignored", order.id if order else None, now
            )
            return _reply(cmd, "ignored", order)
        assert order is not None
        if action == "mark_paid":
            # conditional, so a failure applied meanwhile still wins (the domain rule, in SQL)
            paid = await conn.execute(
                update(orders)
                .where(
                    orders.c.id == order.id,
                    orders.c.status == "pending",
                    ~_failed_applied(order.id).exists(),
                )
                .values(status="paid", updated_at=now)
            )
            result = "applied" if paid.rowcount == 1 else "ignored"
            await _set_result(conn, cmd.idempotency_key, result, order.id, now)
            return _reply(cmd, result, await _find_order(conn, cmd))
        await conn.execute(
            update(payment_events)
            .where(payment_events.c.idempotency_key == cmd.idempotency_key)
            .values(order_id=order.id, result=None)
        )
    # action == "release": outside any transaction, through the product's partition
    body = await bus.request(
        ReleaseOrderStock(
            order_id=order.id, product_id=order.product_id, payment_key=cmd.idempotency_key
        ),
        exchange=topology.INVENTORY_EXCHANGE.name,
        routing_key=topology.product_routing_key(order.product_id, settings.partitions),
        timeout=settings.request_timeout_seconds,
        expires=False,
    )
    _cancelled.validate_json(body)
    async with engine.begin() as conn:
        after = await _find_order(conn, cmd)
        result = domain.result_of_release(
            after.status if after else None,
            after.cancelled_by if after else None,
            cmd.idempotency_key,
        )
        first = await _set_result(conn, cmd.idempotency_key, result, order.id, now)
    return _reply(cmd, result if first else "duplicate", after)
