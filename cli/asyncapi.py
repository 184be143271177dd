"""FastStream's AsyncAPI document of the whole pipeline: every channel and message.

`flashsale docs` writes `document()` to docs/asyncapi.json (and the gateway's OpenAPI beside it);
`faststream docs serve cli.asyncapi:specification` serves it too.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from shared import topology
from shared.messages import (
    CreateOrder,
    ExpireHold,
    ExpireOrder,
    PlaceHold,
    RecordPayment,
    ReleaseOrderStock,
    Restock,
)
from shared.settings import Settings, get_settings
from shared.worker import WorkerContext
from workers.inventory.subscriber import register as inventory
from workers.orders.subscriber import register as orders
from workers.payments.subscriber import register as payments


def _documented_publishers(broker: RabbitBroker, settings: Settings) -> None:
    """The messages the gateway and the workers send (FastStream only sees consumers)."""
    inventory_ex = topology.INVENTORY_EXCHANGE
    for message, about in [
        (PlaceHold, "gateway → the product's partition (request/reply, deadline)"),
        (Restock, "gateway (admin) → the product's partition"),
        (ReleaseOrderStock, "payments worker → the product's partition (failed payment)"),
        (ExpireHold, "inventory sweep → the product's partition (late expiry)"),
    ]:
        broker.publisher(
            "inventory.pNN",
            inventory_ex,
            routing_key="inventory.pNN",
            title=f"{message.__name__}:publish",
            description=about,
            schema=message,
            include_in_schema=True,
        )
    hold_ex, _ = topology.hold_delay(settings.hold_ttl_seconds)
    order_ex, _ = topology.order_delay(settings.payment_window_seconds)
    broker.publisher(
        hold_ex.name,
        hold_ex,
        title=f"{hold_ex.name}:publish",
        description="Inventory worker, after committing a hold: dead-lettered back to the "
        "partition when the hold TTL ends.",
        schema=ExpireHold,
    )
    broker.publisher(
        order_ex.name,
        order_ex,
        title=f"{order_ex.name}:publish",
        description="Orders worker, after creating an online order: cancels it if unpaid when "
        "the payment window ends.",
        schema=ExpireOrder,
    )
    for queue, message in [
        (topology.ORDERS_QUEUE_NAME, CreateOrder),
        (topology.PAYMENTS_QUEUE_NAME, RecordPayment),
    ]:
        broker.publisher(
            queue,
            topology.COMMANDS_EXCHANGE,
            routing_key=queue,
            title=f"{message.__name__}:publish",
            description="gateway → worker (request/reply)",
            schema=message,
        )


def specification(settings: Settings | None = None) -> AsyncAPI:
    """The AsyncAPI factory; `.to_specification().to_json()` gives the document."""
    settings = settings or get_settings()
    broker = RabbitBroker(settings.amqp_url)
    for register in (inventory, orders, payments):
        register(broker, WorkerContext(name="docs", settings=settings))
    _documented_publishers(broker, settings)
    return AsyncAPI(
        broker,
        title="Flash-sale checkout: message pipeline",
        version="0.1.0",
        description="Commands from the gateway to the workers and between workers, over "
        "RabbitMQ. Inventory partitions are inventory.p00 … inventory.pNN "
        "(stable_hash(product_id) % FLASHSALE_PARTITIONS).",
    )


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI document as JSON data, its channels, operations, messages and schemas in
    name order: FastStream keeps subscribers in a WeakSet, whose order is that of their memory
    addresses, so the same code would otherwise give another file on every run."""
    doc: dict[str, Any] = json.loads(specification(settings).to_specification().to_json())
    for section in (doc, doc.get("components", {})):
        for key in ("channels", "operations", "messages", "schemas"):
            if isinstance(section.get(key), dict):
                section[key] = dict(sorted(section[key].items()))
    return doc
