"""Payments handler: record the event by its key first, then move the order along.

A failed payment cancels the order through the product's inventory partition (stock has a
single writer): the event is committed first with no result, the partition is asked, and the
result is written afterwards. A crash in between leaves the result empty, and the redelivered
webhook resumes from there.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topology
from shared.bus import Bus
from shared.messages import OrderCancelled, PaymentRecorded, RecordPayment, ReleaseOrderStock
from shared.settings import Settings
from workers.payments import domain, store

log = logging.getLogger("workers.payments")
_cancelled = TypeAdapter(OrderCancelled)


def _reply(
    cmd: RecordPayment, result: str, order: domain.OrderView | None, reason: str | None = None
) -> PaymentRecorded:
    return PaymentRecorded(
        idempotency_key=cmd.idempotency_key,
        result=result,
        reason=reason,
        order_id=order.order_id if order is not None else cmd.order_id,
        order_status=order.status if order is not None else None,
        product_id=order.product_id if order is not None else None,
    )


async def record(
    engine: AsyncEngine, bus: Bus, settings: Settings, cmd: RecordPayment, now: datetime
) -> PaymentRecorded:
    """Deduplicate by idempotency key, then apply the outcome to the order exactly once."""
    async with engine.begin() as conn:
        stored = await store.record_event(conn, cmd)
        seen = domain.seen_before(cmd.payload_hash, stored)
        if seen == "key_reused":
            return PaymentRecorded(idempotency_key=cmd.idempotency_key, result="key_reused")
        if seen == "duplicate":
            assert stored is not None
            return _reply(cmd, "duplicate", await store.find_order(conn, cmd), stored.reason)
        # new, or an earlier try that stopped half-way (or waits for its order): decide now
        await store.lock(conn, cmd)
        state = await store.load(conn, cmd, now)
        action = domain.decide(cmd, state)
        if action != "release":
            return await _apply(conn, cmd, action, state.order, now)
        order = state.order
        assert order is not None
        if not await store.releasing(conn, cmd.idempotency_key, order.order_id):
            return await _ended_meanwhile(conn, cmd)
    # Outside any transaction, through the product's partition (stock has one writer).
    body = await bus.request(
        ReleaseOrderStock(
            order_id=order.order_id, product_id=order.product_id, payment_key=cmd.idempotency_key
        ),
        exchange=topology.INVENTORY_EXCHANGE.name,
        routing_key=topology.product_routing_key(order.product_id, settings.partitions),
        timeout=settings.request_timeout_seconds,
        expires=False,
    )
    _cancelled.validate_json(body)
    async with engine.begin() as conn:
        after = await store.find_order(conn, cmd)
        result = domain.result_of_release(
            after.status if after else None,
            after.cancelled_by if after else None,
            cmd.idempotency_key,
        )
        first = await store.set_result(conn, cmd.idempotency_key, result, order.order_id, now)
    return _reply(cmd, result if first else "duplicate", after)


async def _apply(
    conn: AsyncConnection,
    cmd: RecordPayment,
    action: domain.Action,
    order: domain.OrderView | None,
    now: datetime,
) -> PaymentRecorded:
    """Every action but a release, in the event's transaction."""
    key = cmd.idempotency_key
    if action == "pending_order":
        if not await store.wait_for_order(conn, key):
            return await _ended_meanwhile(conn, cmd)
        return _reply(cmd, "pending_order", None)
    if action == "ignored":
        if not await store.set_result(conn, key, "ignored", order.order_id if order else None, now):
            return await _ended_meanwhile(conn, cmd)
        return _reply(cmd, "ignored", order)
    assert order is not None
    if action == "applied_again":
        first = await store.set_result(conn, key, "applied", order.order_id, now)
        return _reply(cmd, "applied" if first else "duplicate", order)
    if action == "rejected":
        reason = domain.AMOUNT_MISMATCH
        if not await store.set_result(conn, key, "rejected", order.order_id, now, reason):
            return await _ended_meanwhile(conn, cmd)
        return _reply(cmd, "rejected", order, reason)
    assert action == "mark_paid"
    result = "applied" if await store.mark_paid(conn, order.order_id, now) else "ignored"
    if not await store.set_result(conn, key, result, order.order_id, now):
        return await _ended_meanwhile(conn, cmd)
    return _reply(cmd, result, await store.find_order(conn, cmd))


async def _ended_meanwhile(conn: AsyncConnection, cmd: RecordPayment) -> PaymentRecorded:
    """Another delivery of this event ended its story after this one read it (a failed
    payment's release writes its result outside the order's lock): this one is a duplicate,
    with the reason that delivery stored, and its conditional write changed nothing."""
    stored = await store.stored_event(conn, cmd.idempotency_key)
    return _reply(cmd, "duplicate", await store.find_order(conn, cmd), stored.reason)
