"""The processes' AMQP connection and the topology each one declares at start."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection
from faststream.rabbit import RabbitExchange, RabbitQueue

from shared import topology
from shared.settings import Settings


async def connect(settings: Settings, name: str) -> AbstractRobustConnection:
    """A reconnecting AMQP connection with a low heartbeat (a frozen peer is noticed soon);
    with FLASHSALE_AMQP_FAILOVER_URLS, one that moves to another node when its node is gone."""
    failover = [u.strip() for u in settings.amqp_failover_urls.split(",") if u.strip()]
    if failover:
        from shared.failover import connect_failover

        return await connect_failover(
            [settings.amqp_url, *failover],
            heartbeat=settings.amqp_heartbeat_seconds,
            client_properties={"connection_name": name},
            timeout=10,
        )
    return await aio_pika.connect_robust(
        settings.amqp_url,
        heartbeat=settings.amqp_heartbeat_seconds,
        client_properties={"connection_name": name},
        timeout=10,
    )


async def _declare_exchange(channel: AbstractChannel, ex: RabbitExchange) -> AbstractExchange:
    return await channel.declare_exchange(ex.name, type=ex.type.value, durable=ex.durable)


async def _declare_queue(channel: AbstractChannel, q: RabbitQueue) -> AbstractQueue:
    return await channel.declare_queue(q.name, durable=True, arguments=dict(q.arguments or {}))


async def declare_topology(channel: AbstractChannel, settings: Settings) -> None:
    """Declare every exchange, queue and binding; idempotent, run by each process at start."""
    inventory = await _declare_exchange(channel, topology.INVENTORY_EXCHANGE)
    commands = await _declare_exchange(channel, topology.COMMANDS_EXCHANGE)
    dead = await _declare_exchange(channel, topology.DEAD_EXCHANGE)
    await _declare_exchange(channel, topology.LEVELS_EXCHANGE)
    for q in topology.partition_queues(settings.partitions):
        queue = await _declare_queue(channel, q)
        await queue.bind(inventory, routing_key=q.routing_key)
    for q in (topology.orders_queue(), topology.payments_queue()):
        queue = await _declare_queue(channel, q)
        await queue.bind(commands, routing_key=q.routing_key)
    for q in topology.command_queues(settings.partitions):
        dq = topology.dead_queue(q.name)
        queue = await _declare_queue(channel, dq)
        await queue.bind(dead, routing_key=dq.routing_key)
    for ex, q in (
        topology.hold_delay(settings.hold_ttl_seconds),
        topology.order_delay(settings.payment_window_seconds),
    ):
        exchange = await _declare_exchange(channel, ex)
        queue = await _declare_queue(channel, q)
        await queue.bind(exchange, routing_key="")
