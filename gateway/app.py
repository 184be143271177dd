"""The FastAPI application: routes, problem+json errors, and the lifespan that owns the I/O."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, FastAPI
from prometheus_client import start_http_server

from gateway import docs, openapi, problems
from gateway.availability import Streams
from gateway.product_reads import ProductReads
from gateway.routes import health, holds, orders, payments, products, stream
from gateway.rpc import Requester
from shared.bus import Bus
from shared.db.session import make_engine
from shared.settings import Settings, get_settings

log = logging.getLogger("gateway")


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Prometheus on FLASHSALE_METRICS_PORT, if set; a port taken by another gateway process
    of the same host is logged, not fatal (give each process its own port to scrape it)."""
    if settings.metrics_port is None:
        return None
    try:
        server, _ = start_http_server(settings.metrics_port, addr=settings.http_host)
    except OSError as exc:
        log.warning(
            "metrics port unavailable; this process serves no metrics port",
            extra={"port": settings.metrics_port, "error": str(exc)},
        )
        return None
    return server


def create_app(settings: Settings | None = None) -> FastAPI:
    """A gateway application; engine and broker connection are made when it starts."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        bus = Bus(settings, "gateway")
        await bus.start()
        app.state.settings = settings
        app.state.engine = engine
        app.state.requester = Requester(bus, settings)
        await app.state.requester.start()
        app.state.reads = ProductReads(engine, app.state.requester.snapshot)
        app.state.streams = Streams(
            app.state.requester.snapshot,
            app.state.reads,
            settings.max_streams,
            settings.stream_heartbeat_seconds,
        )
        # Everything made so far lives as long as the process: kept out of the collector's
        # full passes, which would otherwise walk it again and again under load.
        gc.collect()
        gc.freeze()
        metrics = serve_metrics(settings)
        try:
            yield
        finally:
            app.state.streams.close()
            if metrics is not None:
                await asyncio.to_thread(metrics.shutdown)
                metrics.server_close()
            await bus.close()
            await engine.dispose()

    app = FastAPI(
        title="Flash-sale checkout",
        version="0.1.0",
        description=(
            "Sells a limited stock during a flash sale and never sells a unit it does not have. "
            "Errors are application/problem+json (RFC 9457) with a machine-readable `code`; "
            "each operation lists the codes of each of its statuses. Before any operation, "
            "the server may refuse a connection with the same body and close it: 400 "
            "`bad_request` (not HTTP/1.1), 408 `header_timeout`, 431 `header_too_large`, "
            "503 `unavailable` (too many connections)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=docs.OPENAPI_URL if settings.docs_served else None,
        # The HTTP span is gateway.tracing's, for the fast lane's answers and the routes' alike.
        telemetry={"tracing": False},
    )
    problems.install(app)
    openapi.install(app, settings)
    health_router = health.router
    if settings.env == "production":
        # Metrics are for the operators' scraper on FLASHSALE_METRICS_PORT, not the API port.
        health_router = APIRouter()
        health_router.routes.extend(
            r for r in health.router.routes if getattr(r, "path", None) != "/metrics"
        )
    routers = (health_router, products.router, stream.router, holds.router, orders.router)
    for router in (*routers, payments.router):
        app.include_router(router)
    if settings.docs_served:
        docs.install(app)
    return app
