"""The process shell every worker shares: settings, logging, broker, engine, bus, metrics.

What happens when a handler fails is shared.failures."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import health, tracing
from shared.bus import Bus
from shared.db.session import make_engine
from shared.failover import ClusterBroker, node_urls
from shared.logging import setup_logging
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
