"""Orders handler: lock → load → decide → convert and insert → commit; the subscriber then
publishes the follow-ups (the unpaid-order expiry, a release for a payment that failed first)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import locks
from shared.messages import CreateOrder, OrderCreated, OrderRefused
from shared.settings import Settings
from workers.orders import domain, store

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


def _created(order: domain.OrderView) -> OrderCreated:
    return OrderCreated(
        order_id=order.order_id,
        hold_id=order.hold_id,
        product_id=order.product_id,
        qty=order.qty,
        amount_cents=order.amount_cents,
        status=order.status,
        payment_method=order.payment_method,
    )


async def create_order(
    engine: AsyncEngine, settings: Settings, cmd: CreateOrder, clock: Callable[[], datetime]
) -> Outcome:
    """Convert the hold and insert the order in one transaction; apply payments that came first."""
    window = timedelta(seconds=settings.payment_window_seconds)
    async with engine.begin() as conn:
        # Same locks as the payments worker takes: a webhook and this conversion never miss
        # each other (one of them commits first, the other sees it).
        await locks.lock(conn, "hold", cmd.hold_id)
        await locks.lock(conn, "order", cmd.order_id)
        now = clock()  # after the wait: the hold may have expired meanwhile
        decision = domain.decide(cmd, await store.load(conn, cmd), now, window)
        if isinstance(decision, domain.OrderRefused):
            return Outcome(OrderRefused(reason=decision.reason, order_id=decision.order_id))
        if isinstance(decision, domain.OrderReplayed):
            return Outcome(_created(decision.order), decision.pay_by, decision.release_key)
        order = await store.create(conn, cmd, decision, now)
    if order is None:  # lost to the expiry at the boundary
        return Outcome(OrderRefused(reason="hold_expired"))
    return Outcome(
        _created(order),
        pay_by=decision.pay_by if order.status == "pending" else None,
        release_key=decision.release_key,
        rejected=decision.rejected,
    )
