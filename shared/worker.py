"""The process shell every worker shares: settings, logging, broker, engine, bus, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import uvloop
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY, start_http_server
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Bus, BusUnavailable, ReplyTimeout
from shared.db.session import make_engine
from shared.db.tables import message_failures
from shared.logging import setup_logging
from shared.metrics import MESSAGES_FAILED
from shared.settings import Settings, get_settings

log = logging.getLogger("workers")


@dataclass
class WorkerContext:
    """What a worker's handlers need; filled in at start-up, never at import time."""

    name: str
    settings: Settings
    _engine: AsyncEngine | None = None
    _bus: Bus | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

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


def broker_url(settings: Settings, name: str) -> str:
    """The AMQP URL with a low heartbeat (a frozen consumer loses its partition soon) and a
    connection name with the pid, so operators (and the failover test) see who is active."""
    sep = "&" if "?" in settings.amqp_url else "?"
    return (
        f"{settings.amqp_url}{sep}heartbeat={settings.amqp_heartbeat_seconds}"
        f"&name={name}-consumer-{os.getpid()}"
    )


def make_broker(settings: Settings, name: str) -> RabbitBroker:
    """A FastStream broker with Prometheus metrics; per-message logs at DEBUG."""
    return RabbitBroker(
        broker_url(settings, name),
        middlewares=(RabbitPrometheusMiddleware(registry=REGISTRY, app_name=name),),
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

    @app.on_startup
    async def _start() -> None:
        ctx._engine = make_engine(settings)
        ctx._bus = Bus(settings, name)
        await ctx._bus.start()  # declares the whole topology before any subscriber starts
        if settings.metrics_port is not None:
            start_http_server(settings.metrics_port, addr=settings.http_host)

    @app.after_startup
    async def _background() -> None:
        for job in background(ctx) if background else []:
            ctx.background.append(asyncio.create_task(job()))
        log.info("worker started", extra={"worker": name, "pid_partitions": settings.partitions})

    @app.on_shutdown
    async def _stop() -> None:
        for task in ctx.background:
            task.cancel()

    @app.after_shutdown
    async def _close() -> None:
        if ctx._bus is not None:
            await ctx._bus.close()
        if ctx._engine is not None:
            await ctx._engine.dispose()

    return app, broker, ctx


def run(app: FastStream, settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    setup_logging(settings.log_format, settings.log_level)
    uvloop.run(app.run())
