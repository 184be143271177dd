"""Every exchange and queue of the system, with its arguments: the one place names live.

An operator reading the RabbitMQ queue list should understand the system from it:

* ``inventory.pNN`` — commands for the products of partition NN (single active consumer);
* ``holds.delay.<ttl>s`` / ``orders.delay.<ttl>s`` — expiry messages waiting out their TTL,
  dead-lettered back into the product's partition;
* ``orders.commands`` — hold → order conversions;
* ``payments.webhooks`` — verified payment-provider events;
* ``<queue>.dead`` — messages that failed ``DELIVERY_LIMIT`` times (or expired unprocessed);
* ``replies.<process>`` — one exclusive reply queue per requesting process;
* ``levels.<process>`` — one exclusive queue per gateway process, bound to the
  ``flashsale.levels`` fanout: each partition's stock levels after every commit.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, cast

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

if TYPE_CHECKING:
    from faststream.rabbit.schemas.queue import QuorumQueueArgs

INVENTORY_EXCHANGE = RabbitExchange("flashsale.inventory", type=ExchangeType.DIRECT, durable=True)
COMMANDS_EXCHANGE = RabbitExchange("flashsale.commands", type=ExchangeType.DIRECT, durable=True)
DEAD_EXCHANGE = RabbitExchange("flashsale.dead", type=ExchangeType.DIRECT, durable=True)
#: Stock levels after each commit, to every gateway process (transient, latest wins).
LEVELS_EXCHANGE = RabbitExchange("flashsale.levels", type=ExchangeType.FANOUT, durable=True)

ORDERS_QUEUE_NAME = "orders.commands"
PAYMENTS_QUEUE_NAME = "payments.webhooks"

#: Deliveries of one message before it is dead-lettered to ``<queue>.dead``.
DELIVERY_LIMIT = 5


def stable_hash(product_id: int) -> int:
    """A hash of a product id that every process and every Python version agrees on."""
    digest = hashlib.blake2b(str(product_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partition_of(product_id: int, partitions: int) -> int:
    """The inventory partition that decides everything about this product."""
    return stable_hash(product_id) % partitions


def partition_key(partition: int) -> str:
    """Routing key and queue name of an inventory partition, e.g. ``inventory.p03``."""
    return f"inventory.p{partition:02d}"


def product_routing_key(product_id: int, partitions: int) -> str:
    """Routing key of the partition that owns this product."""
    return partition_key(partition_of(product_id, partitions))


def _command_queue_args(name: str) -> dict[str, Any]:
    return {
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_EXCHANGE.name,
        "x-dead-letter-routing-key": name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _quorum(name: str, arguments: dict[str, Any], routing_key: str = "") -> RabbitQueue:
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast("QuorumQueueArgs", arguments),
        routing_key=routing_key or name,
    )


def partition_queue(partition: int) -> RabbitQueue:
    """Quorum queue of one inventory partition: one active consumer at a time, in order."""
    name = partition_key(partition)
    return _quorum(name, {"x-single-active-consumer": True, **_command_queue_args(name)})


def partition_queues(partitions: int) -> list[RabbitQueue]:
    """Every inventory partition queue of a deployment."""
    return [partition_queue(p) for p in range(partitions)]


def orders_queue() -> RabbitQueue:
    """Hold → order conversion commands (any number of consumers)."""
    return _quorum(ORDERS_QUEUE_NAME, _command_queue_args(ORDERS_QUEUE_NAME))


def payments_queue() -> RabbitQueue:
    """Verified payment webhooks (any number of consumers)."""
    return _quorum(PAYMENTS_QUEUE_NAME, _command_queue_args(PAYMENTS_QUEUE_NAME))


def dead_queue(source: str) -> RabbitQueue:
    """Where messages of ``source`` go after ``DELIVERY_LIMIT`` failed deliveries."""
    return _quorum(f"{source}.dead", {}, routing_key=source)


def _delay(kind: str, ttl_seconds: int) -> tuple[RabbitExchange, RabbitQueue]:
    # One TTL per queue: RabbitMQ only expires the head of a queue, so mixed TTLs would be late.
    # The TTL is in the name because re-declaring a queue with another TTL fails.
    name = f"{kind}.delay.{ttl_seconds}s"
    exchange = RabbitExchange(name, type=ExchangeType.FANOUT, durable=True)
    queue = _quorum(
        name,
        {
            "x-message-ttl": ttl_seconds * 1000,
            "x-dead-letter-exchange": INVENTORY_EXCHANGE.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    return exchange, queue


def hold_delay(ttl_seconds: int) -> tuple[RabbitExchange, RabbitQueue]:
    """Delay exchange and queue whose messages come back to their partition after the hold TTL."""
    return _delay("holds", ttl_seconds)


def order_delay(window_seconds: int) -> tuple[RabbitExchange, RabbitQueue]:
    """Delay exchange and queue that return unpaid-order expiries after the payment window."""
    return _delay("orders", window_seconds)


def command_queues(partitions: int) -> list[RabbitQueue]:
    """Every queue that carries commands to a worker (and so has a dead queue)."""
    return [*partition_queues(partitions), orders_queue(), payments_queue()]


def reply_queue_name(process: str) -> str:
    """Name of a process's exclusive reply queue, e.g. ``replies.gateway.host.1234.ab12``."""
    return f"replies.{process}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:4]}"


def levels_queue_name(process: str) -> str:
    """A gateway process's exclusive stock-levels queue, e.g. ``levels.gateway.host.1234.ab12``."""
    return f"levels.{process}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:4]}"
