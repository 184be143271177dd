"""A guarded subscriber with many deliveries in flight, on the real RabbitMQ: its handler sees
them in the queue's order (the partitions' batcher decides in the order handlers reach it)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from shared import failures
from shared.messages import PlaceHold
from shared.settings import Settings
from shared.worker import WorkerContext
from tests.servers import ServerSet

pytestmark = pytest.mark.integration

DELIVERIES = 300


async def test_deliveries_in_flight_reach_a_guarded_handler_in_queue_order(
    servers: ServerSet,
) -> None:
    queue = RabbitQueue(f"order-test.{uuid.uuid4().hex[:8]}", auto_delete=True)
    broker = RabbitBroker(servers.amqp_url)
    ctx = WorkerContext(name="order-test", settings=Settings(amqp_url=servers.amqp_url))
    seen: list[int] = []
    tags: list[int] = []
    done = asyncio.Event()

    @broker.subscriber(
        queue, channel=Channel(prefetch_count=DELIVERIES), ack_policy=AckPolicy.NACK_ON_ERROR
    )
    @failures.guarded(broker, ctx, queue.name)
    async def on_command(command: PlaceHold, message: RabbitMessage) -> None:
        seen.append(command.qty)
        tags.append(message.raw_message.delivery_tag or 0)
        if len(seen) == DELIVERIES:
            done.set()

    async with broker:
        await broker.declare_queue(queue)
        for n in range(1, DELIVERIES + 1):  # all queued before the consumer starts
            await broker.publish(PlaceHold(hold_id=uuid.uuid4(), product_id=1, qty=n), queue=queue)
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
    assert tags == sorted(tags)  # each handler with its own delivery, in delivery order
    assert seen == list(range(1, DELIVERIES + 1))
