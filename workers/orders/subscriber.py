"""FastStream wiring of the orders worker."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import metrics, topology
from shared.failures import guarded
from shared.messages import (
    CreateOrder,
    ExpireOrder,
    OrderCreated,
    OrderRefused,
    ReleaseOrderStock,
    utcnow,
)
from shared.payments import AMOUNT_MISMATCH
from shared.worker import WorkerContext
from workers.orders import handlers

log = logging.getLogger("workers.orders")


def register(broker: RabbitBroker, ctx: WorkerContext) -> None:
    """Consume orders.commands; conversions of different holds run side by side."""

    @broker.subscriber(
        topology.orders_queue(),
        topology.COMMANDS_EXCHANGE,
        channel=Channel(prefetch_count=16),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="orders.commands:consume",
        description="Turn an active, unexpired hold into an order, exactly once.",
    )
    @guarded(broker, ctx, topology.ORDERS_QUEUE_NAME)
    async def on_create_order(
        command: CreateOrder,
        message: RabbitMessage,  # noqa: ARG001 (what guarded settles when this fails)
    ) -> OrderCreated | OrderRefused:
        if command.idempotency_key == "":  # one meaning of "no key", whoever sent it
            command = command.model_copy(update={"idempotency_key": None})
        return await _create(command)

    async def _create(command: CreateOrder) -> OrderCreated | OrderRefused:
        outcome = await handlers.create_order(ctx.engine, ctx.settings, command, utcnow)
        reply = outcome.reply
        if isinstance(reply, OrderCreated):
            key = topology.product_routing_key(reply.product_id, ctx.settings.partitions)
            if outcome.pay_by is not None:
                exchange, _ = topology.order_delay(ctx.settings.payment_window_seconds)
                await ctx.bus.publish(
                    ExpireOrder(order_id=reply.order_id, product_id=reply.product_id),
                    exchange=exchange.name,
                    routing_key=key,
                )
            if outcome.release_key is not None:
                await ctx.bus.publish(
                    ReleaseOrderStock(
                        order_id=reply.order_id,
                        product_id=reply.product_id,
                        payment_key=outcome.release_key,
                    ),
                    exchange=topology.INVENTORY_EXCHANGE.name,
                    routing_key=key,
                )
            for payment_key in outcome.rejected:
                metrics.PAYMENTS.labels("rejected").inc()
                log.warning(
                    "webhook rejected",
                    extra={
                        "idempotency_key": payment_key,
                        "order_id": str(reply.order_id),
                        "reason": AMOUNT_MISMATCH,
                        "order_amount_cents": reply.amount_cents,
                    },
                )
            metrics.ORDERS.labels("created").inc()
            log.info(
                "order created",
                extra={
                    "order_id": str(reply.order_id),
                    "hold_id": str(reply.hold_id),
                    "product_id": reply.product_id,
                    "qty": reply.qty,
                    "status": reply.status,
                    "partition": key,
                    "message_id": str(command.message_id),
                },
            )
        else:
            metrics.ORDERS.labels(reply.reason).inc()
            log.info(
                "conversion refused",
                extra={
                    "hold_id": str(command.hold_id),
                    "order_id": str(command.order_id),
                    "reason": reply.reason,
                    "existing_order_id": str(reply.order_id) if reply.order_id else None,
                    "message_id": str(command.message_id),
                },
            )
        return reply
