"""Pure stock decisions of one inventory partition: no I/O, clock passed in (the state and the
decisions it reads and returns are in workers.inventory.model).

`decide(stock, commands, now)` takes a batch of commands in delivery order and returns one
decision per command. Each decision sees the effect of the ones before it, exactly as if the
commands had been handled one by one; the handler turns the decisions into conditional SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from shared.messages import (
    ExpireHold,
    ExpireOrder,
    OrderCancelled,
    PlaceHold,
    ReleaseOrderStock,
    Restock,
    StockChanged,
)
from workers.inventory.model import (
    Decision,
    Dropped,
    Hold,
    HoldExpired,
    HoldPlaced,
    HoldRefused,
    HoldReplayed,
    InventoryCommand,
    Order,
    Product,
    Restocked,
    Stock,
    StockReleased,
    Unchanged,
)

__all__ = [
    "Decision",
    "Dropped",
    "ExpireHold",
    "ExpireOrder",
    "Hold",
    "HoldPlaced",
    "HoldRefused",
    "HoldExpired",
    "HoldReplayed",
    "InventoryCommand",
    "Order",
    "StockReleased",
    "PlaceHold",
    "Product",
    "ReleaseOrderStock",
    "Restock",
    "Restocked",
    "Stock",
    "Unchanged",
    "decide",
]


# ---- the rules ---------------------------------------------------------------------------
def decide(stock: Stock, commands: Sequence[InventoryCommand], now: datetime) -> list[Decision]:
    """One decision per command, in order; `stock` is updated as the batch goes."""
    return [_decide_one(stock, cmd, now) for cmd in commands]


def _decide_one(stock: Stock, cmd: InventoryCommand, now: datetime) -> Decision:
    if isinstance(cmd, PlaceHold):
        return _place(stock, cmd, now)
    if isinstance(cmd, ExpireHold):
        return _expire(stock, cmd, now)
    if isinstance(cmd, Restock):
        return _restock(stock, cmd, now)
    return _release(stock, cmd)


def _place(stock: Stock, cmd: PlaceHold, now: datetime) -> Decision:
    product = stock.products.get(cmd.product_id)
    existing = stock.holds.get(cmd.hold_id)
    if cmd.idempotency_key is not None and existing is None:
        existing = stock.keyed_holds.get((cmd.client_id, cmd.idempotency_key))
    if existing is not None:
        if existing.request_hash != cmd.request_hash or existing.product_id != cmd.product_id:
            return HoldRefused(cmd, "idempotency_key_reused", None)
        return HoldReplayed(cmd, existing, product.available if product else 0)
    if cmd.expired(now):
        return Dropped(cmd)
    if product is None:
        return HoldRefused(cmd, "product_not_found", None)
    if not product.on_sale(now):
        return HoldRefused(cmd, "sale_not_active", product.available)
    usage_key = (product.product_id, cmd.client_id, cmd.customer_id or "")
    if product.max_per_customer is not None and cmd.customer_id is None:
        # an anonymous hold would bypass the limit: the limit needs someone to count against
        return HoldRefused(cmd, "customer_id_required", product.available)
    # Sold out before the customer's limit: the answer a gateway can give from stock levels.
    if product.available < cmd.qty:
        return HoldRefused(cmd, "insufficient_stock", product.available)
    if cmd.customer_id is not None and product.max_per_customer is not None:
        used = stock.customer_usage.get(usage_key, 0)
        if used + cmd.qty > product.max_per_customer:
            return HoldRefused(cmd, "customer_limit_exceeded", product.available)

    after = replace(product, available=product.available - cmd.qty)
    hold = Hold(
        hold_id=cmd.hold_id,
        product_id=cmd.product_id,
        qty=cmd.qty,
        status="active",
        expires_at=now + stock.hold_ttl,
        customer_id=cmd.customer_id,
        idempotency_key=cmd.idempotency_key,
        request_hash=cmd.request_hash,
        client_id=cmd.client_id,
    )
    stock.products[product.product_id] = after
    stock.holds[hold.hold_id] = hold
    if cmd.idempotency_key is not None:
        stock.keyed_holds[(cmd.client_id, cmd.idempotency_key)] = hold
    if cmd.customer_id is not None:
        stock.customer_usage[usage_key] = stock.customer_usage.get(usage_key, 0) + cmd.qty
    return HoldPlaced(cmd, hold, after.available)


def _expire(stock: Stock, cmd: ExpireHold, now: datetime) -> Decision:
    hold = stock.holds.get(cmd.hold_id)
    if hold is None:
        return Unchanged(cmd, "unknown hold")
    if hold.status != "active":
        return Unchanged(cmd, f"hold already {hold.status}")
    if hold.live(now):
        return Unchanged(cmd, "hold not yet expired")
    product = stock.products.get(hold.product_id)
    if product is None:
        return Unchanged(cmd, "unknown product")
    stock.products[product.product_id] = replace(product, available=product.available + hold.qty)
    # no change to customer_usage: it counts live holds only, and this one was past its expiry
    stock.holds[hold.hold_id] = replace(hold, status="expired")
    return HoldExpired(cmd, hold)


def _restock(stock: Stock, cmd: Restock, now: datetime) -> Decision:
    product = stock.products.get(cmd.product_id)
    if product is None:
        return Unchanged(
            cmd, "unknown product", StockChanged(product_id=cmd.product_id, found=False)
        )
    if cmd.message_id not in stock.applied_restocks and cmd.expired(now):
        return Dropped(cmd)
    if cmd.message_id in stock.applied_restocks:
        current = StockChanged(
            product_id=product.product_id,
            stock_total=product.stock_total,
            available=product.available,
        )
        return Unchanged(cmd, "restock already applied", current)
    stock.applied_restocks.add(cmd.message_id)
    after = replace(
        product, stock_total=product.stock_total + cmd.add, available=product.available + cmd.add
    )
    stock.products[product.product_id] = after
    return Restocked(cmd, after)


def _release(stock: Stock, cmd: ReleaseOrderStock | ExpireOrder) -> Decision:
    order = stock.orders.get(cmd.order_id)
    if order is None:
        return Unchanged(
            cmd,
            "unknown order",
            OrderCancelled(order_id=cmd.order_id, order_status=None, cancelled_now=False),
        )
    if order.status != "pending":
        return Unchanged(
            cmd,
            f"order already {order.status}",
            OrderCancelled(
                order_id=order.order_id,
                order_status=order.status,
                cancelled_now=False,
                cancel_reason=order.cancel_reason,
            ),
        )
    product = stock.products.get(order.product_id)
    if product is None:
        return Unchanged(cmd, "unknown product")
    if isinstance(cmd, ReleaseOrderStock):
        reason, by = "payment_failed", f"payment:{cmd.payment_key or ''}"
    else:
        reason, by = "payment_window_elapsed", "payment_window"
    stock.products[product.product_id] = replace(product, available=product.available + order.qty)
    stock.orders[order.order_id] = replace(order, status="cancelled", cancel_reason=reason)
    return StockReleased(cmd, order, reason, by)
