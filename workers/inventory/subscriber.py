"""FastStream wiring of the inventory worker: one subscriber per partition queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

from shared import metrics, topology
from shared.messages import InventoryCommand, Message, utcnow
from shared.worker import WorkerContext, record_failure
from workers.inventory import domain, handlers
from workers.inventory.batcher import Batcher

log = logging.getLogger("workers.inventory")


def register(broker: RabbitBroker, ctx: WorkerContext) -> None:
    """Subscribe to every partition; single active consumer decides which replica runs which."""
    for queue in topology.partition_queues(ctx.settings.partitions):
        _subscribe(broker, queue, ctx)


def _subscribe(broker: RabbitBroker, queue: RabbitQueue, ctx: WorkerContext) -> None:
    partition = queue.name

    async def schedule_expiry(hold: domain.Hold) -> None:
        exchange, _ = topology.hold_delay(ctx.settings.hold_ttl_seconds)
        await ctx.bus.publish(
            handlers.expiry_for(hold), exchange=exchange.name, routing_key=partition
        )

    async def process(commands: Sequence[domain.InventoryCommand]) -> list[domain.Decision]:
        return await handlers.handle(ctx.engine, ctx.settings, commands, schedule_expiry)

    batcher = Batcher(process, max_batch=ctx.settings.inventory_batch_size)

    # Several deliveries in flight (prefetch), decided strictly one batch at a time, in order,
    # by the batcher: the single writer of this partition (see STYLE.md pitfalls on prefetch).
    # NACK_ON_ERROR: a failing command is redelivered, then dead-lettered after the limit.
    @broker.subscriber(
        queue,
        topology.INVENTORY_EXCHANGE,
        channel=Channel(prefetch_count=ctx.settings.inventory_batch_size),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{partition}:consume",
        description="Holds, expiries, restocks and order releases of this partition's products.",
    )
    async def on_command(command: InventoryCommand) -> Message | None:
        try:
            decision = await batcher.submit(command)
        except Exception as exc:
            await record_failure(ctx, partition, str(command.message_id), command.type, exc)
            raise
        _observe(decision, partition)
        return decision.reply


def _observe(d: domain.Decision, partition: str) -> None:
    """One log line and the metrics of a decision."""
    cmd = d.command
    ids: dict[str, Any] = {
        "partition": partition,
        "message_id": str(cmd.message_id),
        "product_id": cmd.product_id,
    }
    if isinstance(d, domain.HoldCreated):
        metrics.HOLDS.labels("placed").inc()
        log.info(
            "hold placed",
            extra={
                **ids,
                "hold_id": str(d.hold.hold_id),
                "qty": d.hold.qty,
                "available": d.available_after,
                "customer_id": d.hold.customer_id,
            },
        )
    elif isinstance(d, domain.HoldReplayed):
        metrics.HOLDS.labels("replayed").inc()
        log.info("hold replayed", extra={**ids, "hold_id": str(d.hold.hold_id)})
    elif isinstance(d, domain.HoldDenied):
        assert isinstance(cmd, domain.PlaceHold)
        metrics.HOLDS.labels("refused").inc()
        metrics.HOLDS_REFUSED.labels(d.reason).inc()
        log.info(
            "hold refused",
            extra={
                **ids,
                "hold_id": str(cmd.hold_id),
                "reason": d.reason,
                "available": d.available,
                "qty": cmd.qty,
                "customer_id": cmd.customer_id,
            },
        )
    elif isinstance(d, domain.HoldExpired):
        lateness = (utcnow() - d.hold.expires_at).total_seconds()
        metrics.HOLD_EXPIRIES.inc()
        metrics.HOLD_EXPIRY_LATENESS.observe(max(lateness, 0.0))
        log.info(
            "hold expired",
            extra={
                **ids,
                "hold_id": str(d.hold.hold_id),
                "qty": d.hold.qty,
                "lateness_ms": int(lateness * 1000),
            },
        )
    elif isinstance(d, domain.Restocked):
        metrics.RESTOCKS.inc()
        log.info(
            "stock added",
            extra={**ids, "available": d.product.available, "stock_total": d.product.stock_total},
        )
    elif isinstance(d, domain.OrderReleased):
        metrics.STOCK_RELEASED.labels(d.reason).inc()
        log.info(
            "stock released",
            extra={
                **ids,
                "order_id": str(d.order.order_id),
                "qty": d.order.qty,
                "reason": d.reason,
            },
        )
    elif isinstance(d, domain.Dropped):
        metrics.COMMANDS_DROPPED.labels(cmd.type).inc()
        log.warning("command dropped past its deadline", extra={**ids, "type": cmd.type})
    elif isinstance(d, domain.Unchanged):
        log.info("command changed nothing", extra={**ids, "type": cmd.type, "why": d.why})


def sweeper(ctx: WorkerContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The safety net: re-issue late expiries through the partition queues, periodically."""

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(ctx.settings.sweep_interval_seconds)
            try:
                await sweep_once(ctx)
            except Exception:
                log.exception("sweep failed")

    return [sweep_forever]


async def sweep_once(ctx: WorkerContext) -> tuple[int, int]:
    """Publish ExpireHold / ExpireOrder for everything past its expiry plus the grace period."""

    async def publish(message: Message, product_id: int) -> None:
        await ctx.bus.publish(
            message,
            exchange=topology.INVENTORY_EXCHANGE.name,
            routing_key=topology.product_routing_key(product_id, ctx.settings.partitions),
        )

    holds, orders = await handlers.sweep(ctx.engine, ctx.settings, publish, utcnow())
    if holds or orders:
        log.warning("sweep re-issued late expiries", extra={"holds": holds, "orders": orders})
    return holds, orders
