"""What happens when a message's handler fails, the same around every worker's subscriber.

`guarded` wraps a subscriber's handler: a passing fault (broker, database, timeout) is retried
in place for up to `transient_retry_seconds`; what still fails is counted, logged and recorded
for `flashsale dlq list`, then either goes back to its queue (a passing fault, deliveries left)
or is dead-lettered at once with its reason in the message's headers (a decision error, or the
delivery limit reached). A message that succeeds at once costs one call and one clock read.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn, Protocol, TypeVar

import asyncpg  # type: ignore[import-untyped]
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shared import topology
from shared.bus import BusUnavailable, ReplyTimeout
from shared.db.tables import message_failures
from shared.messages import utcnow
from shared.metrics import DEAD_LETTERED, MESSAGES_FAILED
from shared.worker import WorkerContext

log = logging.getLogger("workers")

#: Wait before a message that failed on a passing fault (broker, database, timeout) goes back
#: to its queue, so a short outage does not use up the delivery limit in milliseconds.
TRANSIENT_BACKOFF_SECONDS = 3.0
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006"}
#: Headers a worker adds to a message it dead-letters itself: why, where, who, how often.
DEAD_HEADERS = "flashsale-"

Settlement = Literal["redeliver", "decision_error", "delivery_limit"]


class DeadLettered(Exception):
    """The message was put in its dead queue (with its reason) and acknowledged."""


class Typed(Protocol):
    """A message contract: every one names its type."""

    @property
    def type(self) -> str: ...


C = TypeVar("C", bound=Typed)
R = TypeVar("R")
Handler = Callable[[C, RabbitMessage], Awaitable[R]]


def is_transient(exc: BaseException) -> bool:
    """A fault that a later delivery may not meet: connection loss, timeout, deadlock."""
    if isinstance(exc, ConnectionError | TimeoutError | BusUnavailable | ReplyTimeout):
        return True
    if isinstance(exc, OperationalError | InterfaceError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # the inventory's statements, on asyncpg itself
        return getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return state in _TRANSIENT_SQLSTATES
    return False


def deliveries(message: RabbitMessage) -> int:
    """How many times this message has been delivered, this delivery included."""
    count = (message.raw_message.headers or {}).get("x-delivery-count", 0)
    return (int(count) if isinstance(count, int | str) and str(count).isdigit() else 0) + 1


def settlement(exc: BaseException, delivery: int) -> Settlement:
    """What becomes of a message whose handler failed for good on its `delivery`-th delivery:
    a decision error is not retried (the same command meets the same data); a passing fault
    goes back to its queue until the delivery limit."""
    if not is_transient(exc):
        return "decision_error"
    return "redeliver" if delivery < topology.DELIVERY_LIMIT else "delivery_limit"


def worker_id(ctx: WorkerContext) -> str:
    """This process, as an operator finds it: `inventory-4242@web1`."""
    return f"{ctx.name}-{os.getpid()}@{socket.gethostname()}"


async def record_failure(
    ctx: WorkerContext, queue: str, message_id: str, message_type: str, exc: BaseException
) -> None:
    """Log a failed message and keep its last error for `flashsale dlq list`; then, for a
    passing fault, wait before the message is redelivered. Never raises."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    MESSAGES_FAILED.labels(queue).inc()
    log.error(
        "message failed",
        extra={"queue": queue, "message_id": message_id, "type": message_type, "error": error},
        exc_info=exc,
    )
    try:
        async with ctx.engine.begin() as conn:
            stmt = pg_insert(message_failures).values(
                message_id=message_id, queue=queue, message_type=message_type, error=error
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[message_failures.c.message_id],
                    set_={
                        "error": error,
                        "failures": message_failures.c.failures + 1,
                        "last_failed_at": func.now(),
                    },
                )
            )
    except Exception:  # the database may be what failed; the log line above remains
        log.warning("could not record the failure", extra={"message_id": message_id})
    if is_transient(exc):
        await asyncio.sleep(TRANSIENT_BACKOFF_SECONDS)


async def dead_letter(
    broker: RabbitBroker,
    ctx: WorkerContext,
    queue: str,
    message: RabbitMessage,
    exc: BaseException,
    reason: str,
) -> None:
    """Put a copy of `message` in `<queue>.dead` with the reason it failed (exception type and
    text, worker, delivery count), then acknowledge it. `reason` is `decision_error` (it can
    never succeed) or `delivery_limit` (a passing fault that did not pass)."""
    raw = message.raw_message
    headers: dict[str, Any] = {
        k: v for k, v in (raw.headers or {}).items() if not str(k).startswith(DEAD_HEADERS)
    }
    headers.update(
        {
            f"{DEAD_HEADERS}reason": reason,
            f"{DEAD_HEADERS}error-type": type(exc).__name__,
            f"{DEAD_HEADERS}error": str(exc)[:1000],
            f"{DEAD_HEADERS}worker": worker_id(ctx),
            f"{DEAD_HEADERS}deliveries": deliveries(message),
            f"{DEAD_HEADERS}source-queue": queue,
            f"{DEAD_HEADERS}source-exchange": raw.exchange or "",
            f"{DEAD_HEADERS}routing-key": raw.routing_key or queue,
            f"{DEAD_HEADERS}failed-at": utcnow().isoformat(),
        }
    )
    await broker.publish(
        raw.body,
        routing_key=topology.dead_queue(queue).name,  # the default exchange, by queue name
        headers=headers,
        content_type=raw.content_type,
        message_id=raw.message_id,
        message_type=raw.type,
        correlation_id=raw.correlation_id,
        persist=True,
        mandatory=True,
    )
    await message.ack()
    DEAD_LETTERED.labels(queue, reason).inc()
    log.error(
        "message dead-lettered",
        extra={
            "queue": queue,
            "message_id": raw.message_id,
            "type": raw.type,
            "reason": reason,
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "deliveries": deliveries(message),
        },
    )


async def settle_failure(
    broker: RabbitBroker,
    ctx: WorkerContext,
    queue: str,
    message: RabbitMessage,
    message_type: str,
    exc: BaseException,
) -> NoReturn:
    """After a handler failed for good: record it, then either let the message go back to its
    queue (re-raise `exc`: the subscriber's ack policy nacks it) or dead-letter it with its
    reason at once (raise DeadLettered). Always raises."""
    await record_failure(ctx, queue, message.raw_message.message_id or "", message_type, exc)
    reason = settlement(exc, deliveries(message))
    if reason == "redeliver":
        raise exc
    await dead_letter(broker, ctx, queue, message, exc, reason)
    raise DeadLettered(reason) from exc


def guarded(
    broker: RabbitBroker, ctx: WorkerContext, queue: str
) -> Callable[[Handler[C, R]], Handler[C, R]]:
    """The failure handling of a subscriber on `queue`, put between `broker.subscriber` and
    a handler `(command, message)`.

    FastStream reads the handler's own signature, but its command only: the delivery is taken
    from FastStream's context here. A `message` parameter for FastStream to fill is resolved
    by fast_depends in a worker thread (its context resolver is synchronous), once per
    delivery: a thread hop on every message, and the deliveries of a partition then reached
    its handler in the order their threads finished, not the queue's (a burst of 50 holds and
    a restock behind them had a hold decided after the restock in a full run).
    """

    def wrap(handler: Handler[C, R]) -> Handler[C, R]:
        @functools.wraps(handler)
        async def consume(command: C, message: RabbitMessage | None = None) -> R:
            if message is None:
                message = broker.context.get_local("message")
            assert message is not None, "called outside a delivery"
            started = time.monotonic()
            try:
                return await handler(command, message)
            except Exception as exc:
                failed = exc
            return await _recover(broker, ctx, queue, handler, command, message, failed, started)

        own = inspect.signature(handler)
        consume.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=list(own.parameters.values())[:1]
        )
        return consume

    return wrap


async def _recover(
    broker: RabbitBroker,
    ctx: WorkerContext,
    queue: str,
    handler: Handler[C, R],
    command: C,
    message: RabbitMessage,
    exc: Exception,
    started: float,
) -> R:
    """While the handler fails on a passing fault, wait and run it again, for up to
    `transient_retry_seconds` since it started (a database outage then costs no delivery of
    the message); then settle the failure."""
    give_up = started + ctx.settings.transient_retry_seconds
    delay = 0.25
    while is_transient(exc) and time.monotonic() + delay <= give_up:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)
        try:
            return await handler(command, message)
        except Exception as again:
            exc = again
    await settle_failure(broker, ctx, queue, message, command.type, exc)
