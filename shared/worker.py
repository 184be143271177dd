"""The process shell every worker shares: settings, logging, broker, engine, bus, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import uvloop
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import health, topology, tracing
from shared.bus import Bus, BusUnavailable, ReplyTimeout
from shared.db.session import make_engine
from shared.db.tables import message_failures
from shared.failover import ClusterBroker, node_urls
from shared.logging import setup_logging
from shared.messages import utcnow
from shared.metrics import DEAD_LETTERED, MESSAGES_FAILED
from shared.settings import Settings, get_settings

log = logging.getLogger("workers")
T = TypeVar("T")


@dataclass
class WorkerContext:
    """What a worker's handlers need; filled in at start-up, never at import time."""

    name: str
    settings: Settings
    _engine: AsyncEngine | None = None
    _bus: Bus | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    #: the subscribers consume (readiness says "starting" before)
    started: bool = False

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "worker not started"
        return self._engine

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "worker not started"
        return self._bus


#: Wait before a message that failed on a passing fault (broker, database, timeout) goes back
#: to its queue, so a short outage does not use up the delivery limit in milliseconds.
TRANSIENT_BACKOFF_SECONDS = 3.0
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


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


async def retrying(ctx: WorkerContext, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt`; while it fails on a passing fault, wait and run it again, for up to
    `transient_retry_seconds`: a database outage then costs no delivery of the message."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + ctx.settings.transient_retry_seconds
    delay = 0.25
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc) or loop.time() + delay > give_up:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)


#: Headers a worker adds to a message it dead-letters itself: why, where, who, how often.
DEAD_HEADERS = "flashsale-"


class DeadLettered(Exception):
    """The message was put in its dead queue (with its reason) and acknowledged."""


def deliveries(message: RabbitMessage) -> int:
    """How many times this message has been delivered, this delivery included."""
    count = (message.raw_message.headers or {}).get("x-delivery-count", 0)
    return (int(count) if isinstance(count, int | str) and str(count).isdigit() else 0) + 1


def worker_id(ctx: WorkerContext) -> str:
    """This process, as an operator finds it: `inventory-4242@web1`."""
    return f"{ctx.name}-{os.getpid()}@{socket.gethostname()}"


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
) -> None:
    """After a handler failed for good: record it, then either let the message go back to its
    queue (a passing fault, deliveries left) or dead-letter it with its reason at once (a
    decision error is not retried: the same command meets the same data). Always raises."""
    message_id = message.raw_message.message_id or ""
    await record_failure(ctx, queue, message_id, message_type, exc)
    if is_transient(exc) and deliveries(message) < topology.DELIVERY_LIMIT:
        raise exc
    reason = "delivery_limit" if is_transient(exc) else "decision_error"
    await dead_letter(broker, ctx, queue, message, exc, reason)
    raise DeadLettered(reason) from exc


def broker_urls(settings: Settings, name: str) -> list[str]:
    """Every broker node's AMQP URL (FLASHSALE_AMQP_URL first) with a low heartbeat (a frozen
    consumer loses its partition soon) and a connection name with the pid, so operators (and
    the failover tests) see who is active and where."""
    query = f"heartbeat={settings.amqp_heartbeat_seconds}&name={name}-consumer-{os.getpid()}"
    return [
        f"{url}{'&' if '?' in url else '?'}{query}"
        for url in node_urls(settings.amqp_url, settings.amqp_failover_urls)
    ]


def make_broker(settings: Settings, name: str) -> RabbitBroker:
    """A FastStream broker on every node of the cluster, with Prometheus metrics, and traces
    when the environment asks for them (shared.tracing); per-message logs at DEBUG."""
    middlewares: list[Any] = [RabbitPrometheusMiddleware(registry=REGISTRY, app_name=name)]
    if tracing.wanted():  # the tracer provider is set at start-up: no I/O at import
        from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware

        middlewares.insert(0, RabbitTelemetryMiddleware())
    return ClusterBroker(
        broker_urls(settings, name),
        middlewares=tuple(middlewares),
        logger=logging.getLogger(f"faststream.{name}"),
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
    )


def build_app(
    name: str,
    register: Callable[[RabbitBroker, WorkerContext], None],
    background: Callable[[WorkerContext], list[Callable[[], Coroutine[Any, Any, None]]]]
    | None = None,
    settings: Settings | None = None,
) -> tuple[FastStream, RabbitBroker, WorkerContext]:
    """A worker application: `register` adds the subscribers, `background` periodic tasks."""
    settings = settings or get_settings()
    ctx = WorkerContext(name=name, settings=settings)
    broker = make_broker(settings, name)
    register(broker, ctx)
    app = FastStream(broker, logger=logging.getLogger(f"faststream.{name}"))

    endpoints: list[asyncio.Server] = []

    @app.on_startup
    async def _start() -> None:
        tracing.configure(name)
        if settings.metrics_port is not None:  # /healthz at once, /readyz once it consumes

            def ready() -> Awaitable[dict[str, str]]:
                return health.worker_checks(ctx.started, broker, ctx._bus, ctx._engine)

            endpoints.append(await health.serve(settings.http_host, settings.metrics_port, ready))
        ctx._engine = make_engine(settings)
        ctx._bus = Bus(settings, name)
        await ctx._bus.start()  # declares the whole topology before any subscriber starts

    @app.after_startup
    async def _background() -> None:
        ctx.started = True
        for job in background(ctx) if background else []:
            ctx.background.append(asyncio.create_task(job()))
        log.info("worker started", extra={"worker": name, "pid_partitions": settings.partitions})

    @app.on_shutdown
    async def _stop() -> None:
        for task in ctx.background:
            task.cancel()

    @app.after_shutdown
    async def _close() -> None:
        for server in endpoints:
            server.close()
        if ctx._bus is not None:
            await ctx._bus.close()
        if ctx._engine is not None:
            await ctx._engine.dispose()

    return app, broker, ctx


def run(app: FastStream, settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    setup_logging(settings.log_format, settings.log_level)
    uvloop.run(app.run())
