"""Operator commands: audit, stats, the expiry sweep, dead-letter queues, API documents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topology
from shared.bus import Bus, connect, declare_topology
from shared.db.audit import ProductLedger, ledgers
from shared.db.session import make_engine
from shared.db.tables import message_failures
from shared.failures import DEAD_HEADERS  # set on a message a worker dead-lettered itself
from shared.messages import Message, utcnow
from shared.settings import Settings

T = TypeVar("T")


async def with_engine(settings: Settings, fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    engine = make_engine(settings, pool_size=2)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


async def read_ledgers(settings: Settings) -> list[ProductLedger]:
    """Every product's ledger from one consistent snapshot."""

    async def read(engine: AsyncEngine) -> list[ProductLedger]:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                return await ledgers(conn)

    return await with_engine(settings, read)


async def sweep_now(settings: Settings) -> tuple[int, int]:
    """Re-issue the expiry of every overdue hold and unpaid order through its partition."""
    from workers.inventory.handlers import sweep

    bus = Bus(settings, "cli")
    await bus.start()
    try:

        async def publish(message: Message, product_id: int) -> None:
            await bus.publish(
                message,
                exchange=topology.INVENTORY_EXCHANGE.name,
                routing_key=topology.product_routing_key(product_id, settings.partitions),
            )

        return await with_engine(
            settings, lambda engine: sweep(engine, settings, publish, utcnow())
        )
    finally:
        await bus.close()


def _death(message: AbstractIncomingMessage) -> dict[str, Any]:
    """Where and why a message died: from the worker's own headers when it dead-lettered the
    message itself (with the error, the worker and the delivery count), else from RabbitMQ's
    x-death header (delivery limit reached, or expired unprocessed)."""
    headers: dict[str, Any] = dict(message.headers or {})
    own = {k[len(DEAD_HEADERS) :]: v for k, v in headers.items() if k.startswith(DEAD_HEADERS)}
    if own:
        error = f"{own.get('error-type', '')}: {own.get('error', '')}"
        return {
            "source_queue": str(own.get("source-queue", "")),
            "exchange": str(own.get("source-exchange", "")),
            "routing_key": str(own.get("routing-key", "")),
            "reason": str(own.get("reason", "")),
            "count": int(own.get("deliveries", 0) or 0),
            "time": str(own.get("failed-at", "")),
            "error": error,
            "worker": str(own.get("worker", "")),
        }
    deaths: list[Any] = list(headers.get("x-death") or [])
    first: dict[str, Any] = deaths[0] if deaths and isinstance(deaths[0], dict) else {}
    keys: list[Any] = list(first.get("routing-keys") or [""])
    return {
        "source_queue": str(first.get("queue", "")),
        "exchange": str(first.get("exchange", "")),
        "routing_key": str(keys[0]),
        "reason": str(first.get("reason", "")),
        "count": int(first.get("count", 0) or 0),
        "time": str(first.get("time", "")),
        "error": "",
        "worker": "",
    }


def dead_queue_names(settings: Settings) -> list[str]:
    return [topology.dead_queue(q.name).name for q in topology.command_queues(settings.partitions)]


async def _drain(
    channel: AbstractChannel, queue_name: str, limit: int
) -> list[AbstractIncomingMessage]:
    queue = await channel.declare_queue(queue_name, passive=True)
    got: list[AbstractIncomingMessage] = []
    while len(got) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        got.append(message)
    return got


async def dlq_list(settings: Settings, queue: str | None, limit: int) -> list[dict[str, Any]]:
    """Dead-lettered messages with their death reason and last error; they stay in place."""
    connection = await connect(settings, "cli-dlq")
    rows: list[dict[str, Any]] = []
    try:
        channel = await connection.channel()
        await declare_topology(channel, settings)
        for name in [queue] if queue else dead_queue_names(settings):
            for m in await _drain(channel, name, limit):
                rows.append(
                    {
                        "dead_queue": name,
                        "message_id": m.message_id,
                        "type": m.type,
                        **_death(m),
                        "body": m.body.decode(errors="replace")[:300],
                    }
                )
        await channel.close()  # unacknowledged: every message goes back where it was
    finally:
        await connection.close()

    async def errors(engine: AsyncEngine) -> dict[str, tuple[str, int]]:
        ids = [r["message_id"] for r in rows if r["message_id"]]
        async with engine.connect() as conn:
            found = await conn.execute(
                select(
                    message_failures.c.message_id,
                    message_failures.c.error,
                    message_failures.c.failures,
                ).where(message_failures.c.message_id.in_(ids))
            )
            return {r[0]: (r[1], r[2]) for r in found}

    try:
        known = await with_engine(settings, errors) if rows else {}
    except Exception:  # the database may be what is down: the messages' own reasons remain
        known = {}
    for r in rows:
        error, failures = known.get(r["message_id"], ("", 0))
        if r["error"]:  # the message's own: exception, worker and delivery count
            error = f"{r['error']} (worker {r['worker']}, delivery {r['count']})"
        r["last_error"], r["failures"] = error, failures
    return rows


async def dlq_replay(settings: Settings, queue: str | None, limit: int) -> int:
    """Publish dead-lettered messages back to where they first died, then remove them."""
    connection = await connect(settings, "cli-dlq")
    replayed = 0
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        for name in [queue] if queue else dead_queue_names(settings):
            for m in await _drain(channel, name, limit):
                death = _death(m)
                headers = {
                    k: v
                    for k, v in (m.headers or {}).items()
                    if not k.startswith(("x-", DEAD_HEADERS))
                }
                target = await channel.get_exchange(
                    death["exchange"] or topology.INVENTORY_EXCHANGE.name
                )
                await target.publish(
                    aio_pika.Message(
                        m.body,
                        content_type=m.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=m.message_id,
                        type=m.type,
                        correlation_id=m.correlation_id,
                        headers=headers,
                    ),
                    death["routing_key"] or death["source_queue"],
                    mandatory=True,
                )
                await m.ack()
                replayed += 1
    finally:
        await connection.close()
    return replayed


def asyncapi_document() -> dict[str, Any]:
    """FastStream's AsyncAPI document of every channel and message, in name order."""
    from cli.asyncapi import document

    return document()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]
