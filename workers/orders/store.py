"""The orders worker's reads and writes, in the conversion's transaction.

`load` reads what `domain.decide` may look at; `apply` writes its decision with conditional
SQL (the hold is converted only while active and unexpired: the last guard against the expiry
at the boundary).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import holds, orders, payment_events, products
from shared.messages import CreateOrder
from shared.payments import AMOUNT_MISMATCH
from workers.orders import domain


def order_view(row: RowMapping) -> domain.OrderView:
    return domain.OrderView(
        order_id=row["id"],
        hold_id=row["hold_id"],
        product_id=row["product_id"],
        qty=row["qty"],
        amount_cents=row["amount_cents"],
        status=row["status"],
        payment_method=row["payment_method"],
        pay_by=row["pay_by"],
        request_hash=row["request_hash"],
    )


def _hold_view(row: RowMapping) -> domain.HoldView:
    return domain.HoldView(
        hold_id=row["id"],
        product_id=row["product_id"],
        qty=row["qty"],
        status=row["status"],
        expires_at=row["expires_at"],
        customer_id=row["customer_id"],
        order_id=row["order_id"],
        client_id=row["client_id"],
    )


async def _one(conn: AsyncConnection, statement: Any) -> RowMapping | None:
    row: RowMapping | None = (await conn.execute(statement)).mappings().first()
    return row


async def load(conn: AsyncConnection, cmd: CreateOrder) -> domain.OrderState:
    """The order this command made already, else its hold, the product's price and the
    payments received before the order."""
    same = orders.c.id == cmd.order_id
    if cmd.idempotency_key:
        # the key finds the order a retry made, under whatever id that one was given
        same |= (orders.c.client_id == cmd.client_id) & (
            orders.c.idempotency_key == cmd.idempotency_key
        )
    existing = await _one(conn, select(orders).where(same))
    if existing is not None:
        order = order_view(existing)
        failed = None
        if order.status == "pending":
            failed = (
                await conn.execute(
                    select(payment_events.c.idempotency_key).where(
                        payment_events.c.order_id == order.order_id,
                        payment_events.c.status == "failed",
                        payment_events.c.result == "applied",
                    )
                )
            ).scalar()
        return domain.OrderState(existing=order, failed_key=failed)
    found = await _one(conn, select(holds).where(holds.c.id == cmd.hold_id))
    if found is None:
        return domain.OrderState()
    hold = _hold_view(found)
    price = (
        await conn.execute(select(products.c.price_cents).where(products.c.id == hold.product_id))
    ).scalar_one()
    pending = await conn.execute(
        select(
            payment_events.c.idempotency_key,
            payment_events.c.status,
            payment_events.c.amount_cents,
        )
        .where(
            payment_events.c.result == "pending_order",
            (payment_events.c.order_id == cmd.order_id) | (payment_events.c.hold_id == cmd.hold_id),
        )
        .order_by(payment_events.c.received_at, payment_events.c.idempotency_key)
    )
    events = [domain.PendingEvent(k, s, a) for k, s, a in pending]
    return domain.OrderState(hold=hold, price_cents=price, pending=events)


async def create(
    conn: AsyncConnection, cmd: CreateOrder, decision: domain.OrderCreated, now: datetime
) -> domain.OrderView | None:
    """Convert the hold and insert the order; None: the hold expired at the boundary."""
    hold = decision.hold
    converted = await conn.execute(
        update(holds)
        .where(holds.c.id == hold.hold_id, holds.c.status == "active", holds.c.expires_at > now)
        .values(status="converted", order_id=cmd.order_id, updated_at=now)
    )
    if converted.rowcount != 1:
        return None
    row = (
        (
            await conn.execute(
                orders.insert()
                .values(
                    id=cmd.order_id,
                    hold_id=hold.hold_id,
                    product_id=hold.product_id,
                    customer_id=hold.customer_id,
                    qty=hold.qty,
                    amount_cents=decision.amount_cents,
                    status=decision.settlement.order_status,
                    payment_method=cmd.payment_method,
                    pay_by=decision.pay_by,
                    client_id=cmd.client_id,
                    idempotency_key=cmd.idempotency_key,
                    request_hash=cmd.request_hash,
                )
                .returning(orders)
            )
        )
        .mappings()
        .one()
    )
    for key, result in decision.settlement.results.items():
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
    return order_view(row)
