"""FastStream wiring of the inventory worker: one subscriber per partition queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from shared import topology
from shared.failures import guarded, is_transient, record_failure
from shared.messages import (
    ExpireHolds,
    HoldRefused,
    HoldsDecided,
    Level,
    Message,
    PartitionMessage,
    PlaceHolds,
    StockLevels,
    utcnow,
)
from shared.worker import WorkerContext
from workers.inventory import domain, handlers
from workers.inventory.batcher import Batcher
from workers.inventory.observe import observe

log = logging.getLogger("workers.inventory")

#: Most expiries one ExpireHolds carries.
EXPIRIES_PER_MESSAGE = 5000
#: Most product levels a consumer keeps for its replies (they are needed for milliseconds), and
#: most products it decides on without reading them first.
LATEST_LEVELS = 10_000


def register(broker: RabbitBroker, ctx: WorkerContext) -> None:
    """Subscribe to every partition; single active consumer decides which replica runs which."""
    for queue in topology.partition_queues(ctx.settings.partitions):
        _subscribe(broker, queue, ctx)


def _subscribe(broker: RabbitBroker, queue: RabbitQueue, ctx: WorkerContext) -> None:
    partition = queue.name
    follow_ups: set[asyncio.Task[None]] = set()
    #: the newest committed level of each product this consumer decided lately, for replies
    latest: dict[int, Level] = {}
    #: the products as this consumer's own commits left them (handlers.handle keeps it)
    known: dict[int, domain.Product] = {}

    async def publish_expiries(holds: Sequence[domain.Hold]) -> None:
        # Not awaited by the next batch: a hold whose expiry is lost here (the worker dies
        # before the broker confirms it) is expired by the sweep, which is what bounds it.
        exchange, _ = topology.hold_delay(ctx.settings.hold_ttl_seconds)
        try:
            for start in range(0, len(holds), EXPIRIES_PER_MESSAGE):
                chunk = holds[start : start + EXPIRIES_PER_MESSAGE]
                await ctx.bus.publish(
                    handlers.expiries_of(chunk), exchange=exchange.name, routing_key=partition
                )
        except Exception as exc:
            log.warning(
                "expiry not published; the sweep will expire these holds",
                extra={"partition": partition, "holds": len(holds), "error": repr(exc)},
            )

    def after_commit(done: handlers.Committed) -> None:
        if len(latest) > LATEST_LEVELS:
            latest.clear()  # a reply without a product's level makes its gateway read it
        latest.update(done.levels)
        jobs = [
            ctx.bus.notify(
                StockLevels(partition=partition, levels=done.levels),
                exchange=topology.LEVELS_EXCHANGE.name,
            )
        ]
        if done.to_expire:
            jobs.append(publish_expiries(done.to_expire))
        for job in jobs:
            task = asyncio.create_task(job)
            follow_ups.add(task)
            task.add_done_callback(follow_ups.discard)

    async def process(commands: Sequence[domain.InventoryCommand]) -> list[domain.Decision]:
        started = time.perf_counter()
        if len(known) > LATEST_LEVELS:
            known.clear()  # read again, locked, when next needed
        done = await handlers.handle(ctx.engine, ctx.settings, commands, known=known)
        after_commit(done)
        observe(done, partition, time.perf_counter() - started)
        return done.decisions

    batcher = Batcher(process, max_batch=ctx.settings.inventory_batch_size, name=partition)

    async def decide_envelope(
        envelope: PlaceHolds | ExpireHolds, delivery: int = 0
    ) -> HoldsDecided | None:
        items: Sequence[domain.PlaceHold | domain.ExpireHold] = envelope.holds
        results = await batcher.submit_many(items, delivery)
        failed = [(c, r) for c, r in zip(items, results, strict=True) if isinstance(r, Exception)]
        if any(is_transient(exc) for _, exc in failed):
            raise failed[0][1]  # redelivered whole: what was committed replays unchanged
        for item, exc in failed:  # decided alone and still failing: not a passing fault
            await record_failure(ctx, partition, str(item.message_id), item.type, exc)
        if isinstance(envelope, ExpireHolds):
            if failed:  # kept, with its reason, for the operator to replay once repaired
                raise failed[0][1]
            return None
        # A hold its product's data cannot decide is refused at once, with that reason.
        products = {item.product_id for item in items}
        return HoldsDecided(
            replies=[_reply_of(r) for r in results],
            levels={pid: latest[pid] for pid in products if pid in latest},
        )

    # Several deliveries in flight (prefetch), decided strictly one batch at a time, in order,
    # by the batcher: the single writer of this partition (see STYLE.md pitfalls on prefetch).
    # NACK_ON_ERROR: a failing command is redelivered, then dead-lettered after the limit
    # (shared.failures: a decision error at once).
    @broker.subscriber(
        queue,
        topology.INVENTORY_EXCHANGE,
        channel=Channel(prefetch_count=ctx.settings.inventory_batch_size),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{partition}:consume",
        description="Holds (one by one or in envelopes from each gateway), expiries, restocks "
        "and order releases of this partition's products.",
    )
    @guarded(broker, ctx, partition)
    async def on_command(command: PartitionMessage, message: RabbitMessage) -> Message | None:
        command = _without_empty_keys(command)
        delivery = message.raw_message.delivery_tag or 0
        if isinstance(command, PlaceHolds | ExpireHolds):
            return await decide_envelope(command, delivery)
        return (await batcher.submit(command, delivery)).reply


def _reply_of(result: domain.Decision | BaseException) -> Message | None:
    """A hold's reply: its decision, or a refusal when its product's data cannot be decided
    on (not a passing fault: deciding again would fail again)."""
    if isinstance(result, domain.Decision):
        return result.reply
    if is_transient(result):
        return None
    return HoldRefused(reason="product_undecidable")


def _without_empty_keys(command: PartitionMessage) -> PartitionMessage:
    """One meaning of "no key" down to the SQL: an empty Idempotency-Key is none."""
    if isinstance(command, PlaceHolds) and any(h.idempotency_key == "" for h in command.holds):
        holds = [
            h.model_copy(update={"idempotency_key": None}) if h.idempotency_key == "" else h
            for h in command.holds
        ]
        return command.model_copy(update={"holds": holds})
    if isinstance(command, domain.PlaceHold) and command.idempotency_key == "":
        return command.model_copy(update={"idempotency_key": None})
    return command


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
    """Publish ExpireHolds / ExpireOrder for everything past its expiry plus the grace period."""

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
