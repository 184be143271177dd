"""FastStream wiring of the payments worker."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import metrics, topology
from shared.failures import guarded
from shared.messages import PaymentRecorded, RecordPayment, utcnow
from shared.worker import WorkerContext
from workers.payments import handlers

log = logging.getLogger("workers.payments")

_EVENTS = {
    "applied": "webhook applied",
    "duplicate": "webhook duplicate",
    "ignored": "webhook ignored",
    "pending_order": "webhook pending",
    "key_reused": "webhook key reused",
    "rejected": "webhook rejected",
}


def register(broker: RabbitBroker, ctx: WorkerContext) -> None:
    """Consume payments.webhooks."""

    @broker.subscriber(
        topology.payments_queue(),
        topology.COMMANDS_EXCHANGE,
        channel=Channel(prefetch_count=16),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="payments.webhooks:consume",
        description="Verified payment webhooks: deduplicated by key, then applied to the order.",
    )
    @guarded(broker, ctx, topology.PAYMENTS_QUEUE_NAME)
    async def on_payment(
        command: RecordPayment,
        message: RabbitMessage,  # noqa: ARG001 (what guarded settles when this fails)
    ) -> PaymentRecorded:
        reply = await handlers.record(ctx.engine, ctx.bus, ctx.settings, command, utcnow())
        metrics.PAYMENTS.labels(reply.result).inc()
        warn = ("ignored", "key_reused", "rejected")
        level = logging.WARNING if reply.result in warn else logging.INFO
        log.log(
            level,
            _EVENTS[reply.result],
            extra={
                "idempotency_key": command.idempotency_key,
                "order_id": str(reply.order_id) if reply.order_id else None,
                "hold_id": str(command.hold_id) if command.hold_id else None,
                "status": command.status,
                "amount_cents": command.amount_cents,
                "reason": reply.reason,
                "order_status": reply.order_status,
                "product_id": reply.product_id,
                "partition": topology.product_routing_key(reply.product_id, ctx.settings.partitions)
                if reply.product_id is not None
                else None,
                "message_id": str(command.message_id),
            },
        )
        return reply
