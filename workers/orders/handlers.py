"""Orders handler: lock → load → decide → convert and insert → commit → publish follow-ups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import locks
from shared.db.tables import holds, orders, payment_events, products
from shared.messages import CreateOrder, OrderCreated, OrderRefused
from shared.payments import AMOUNT_MISMATCH
from shared.settings import Settings
from workers.orders import domain

log = logging.getLogger("workers.orders")


@dataclass
class Outcome:
    reply: OrderCreated | OrderRefused
    #: after the commit: schedule the unpaid-order expiry
    pay_by: datetime | None = None
    #: after the commit: a payment that failed before the order existed cancels it
    release_key: str | None = None
    #: payments received before the order whose amount was not the order's (not applied)
    rejected: list[str] = field(default_factory=list)


def _created(row: object) -> OrderCreated:
    return OrderCreated(
        order_id=row.id,  # type: ignore[attr-defined]
        hold_id=row.hold_id,  # type: ignore[attr-defined]
        product_id=row.product_id,  # type: ignore[attr-defined]
        qty=row.qty,  # type: ignore[attr-defined]
        amount_cents=row.amount_cents,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        payment_method=row.payment_method,  # type: ignore[attr-defined]
    )


async def _replay(conn: AsyncConnection, cmd: CreateOrder, row: object) -> Outcome:
    """The order exists already: answer it again and redo the follow-ups (all idempotent)."""
    if row.hold_id != cmd.hold_id or (  # type: ignore[attr-defined]
        cmd.idempotency_key and row.request_hash != cmd.request_hash  # type: ignore[attr-defined]
    ):
        return Outcome(OrderRefused(reason="idempotency_key_reused", order_id=row.id))  # type: ignore[attr-defined]
    outcome = Outcome(_created(row))
    if row.status == "pending":  # type: ignore[attr-defined]
        outcome.pay_by = row.pay_by  # type: ignore[attr-defined]
        failed = await conn.execute(
            select(payment_events.c.idempotency_key).where(
                payment_events.c.order_id == row.id,  # type: ignore[attr-defined]
                payment_events.c.status == "failed",
                payment_events.c.result == "applied",
            )
        )
        outcome.release_key = failed.scalars().first()
    return outcome


async def create_order(
    engine: AsyncEngine, settings: Settings, cmd: CreateOrder, clock: Callable[[], datetime]
) -> Outcome:
    """Convert the hold and insert the order in one transaction; apply payments that came first."""
    async with engine.begin() as conn:
        # Same locks as the payments worker takes: a webhook and this conversion never miss
        # each other (one of them commits first, the other sees it).
        await locks.lock(conn, "hold", cmd.hold_id)
        await locks.lock(conn, "order", cmd.order_id)
        now = clock()  # after the wait: the hold may have expired meanwhile
        same = orders.c.id == cmd.order_id
        if cmd.idempotency_key:
            # the key finds the order a retry made, under whatever id that one was given
            same |= (orders.c.client_id == cmd.client_id) & (
                orders.c.idempotency_key == cmd.idempotency_key
            )
        existing = (await conn.execute(select(orders).where(same))).first()
        if existing is not None:
            return await _replay(conn, cmd, existing)
        h = (await conn.execute(select(holds).where(holds.c.id == cmd.hold_id))).first()
        hold = (
            domain.HoldView(
                h.id,
                h.product_id,
                h.qty,
                h.status,
                h.expires_at,
                h.customer_id,
                h.order_id,
                h.client_id,
            )
            if h
            else None
        )
        decision = domain.decide_conversion(hold, now, cmd.client_id)
        if isinstance(decision, domain.Refuse):
            return Outcome(OrderRefused(reason=decision.reason, order_id=decision.order_id))
        assert hold is not None
        converted = await conn.execute(
            update(holds)
            .where(holds.c.id == hold.hold_id, holds.c.status == "active", holds.c.expires_at > now)
            .values(status="converted", order_id=cmd.order_id, updated_at=now)
        )
        if converted.rowcount != 1:  # lost to the expiry at the boundary
            return Outcome(OrderRefused(reason="hold_expired"))
        price = (
            await conn.execute(
                select(products.c.price_cents).where(products.c.id == hold.product_id)
            )
        ).scalar_one()
        pending = await conn.execute(
            select(
                payment_events.c.idempotency_key,
                payment_events.c.status,
                payment_events.c.amount_cents,
            )
            .where(
                payment_events.c.result == "pending_order",
                (payment_events.c.order_id == cmd.order_id)
                | (payment_events.c.hold_id == cmd.hold_id),
            )
            .order_by(payment_events.c.received_at, payment_events.c.idempotency_key)
        )
        amount = price * hold.qty
        settlement = domain.settle_pending(
            [domain.PendingEvent(k, s, a) for k, s, a in pending], amount
        )
        pay_by = now + timedelta(seconds=settings.payment_window_seconds)
        online = cmd.payment_method == "online"
        row = (
            await conn.execute(
                orders.insert()
                .values(
                    id=cmd.order_id,
                    hold_id=hold.hold_id,
                    product_id=hold.product_id,
                    customer_id=hold.customer_id,
                    qty=hold.qty,
                    amount_cents=amount,
                    status=settlement.order_status,
                    payment_method=cmd.payment_method,
                    pay_by=pay_by if online else None,
                    client_id=cmd.client_id,
                    idempotency_key=cmd.idempotency_key,
                    request_hash=cmd.request_hash,
                )
                .returning(orders)
            )
        ).one()
        for key, result in settlement.results.items():
            await conn.execute(
                update(payment_events)
                .where(payment_events.c.idempotency_key == key)
                .values(
                    result=result,
                    reason=AMOUNT_MISMATCH if result == "rejected" else None,
                    order_id=cmd.order_id,
                    resolved_at=now,
                )
            )
        release_key = next(
            (k for k, r in settlement.results.items() if r == "applied" and settlement.release),
            None,
        )
    return Outcome(
        _created(row),
        pay_by=pay_by if online and settlement.order_status == "pending" else None,
        release_key=release_key,
        rejected=[k for k, r in settlement.results.items() if r == "rejected"],
    )
