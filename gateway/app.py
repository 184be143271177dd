"""The FastAPI application: routes, problem+json errors, and the lifespan that owns the I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import problems
from gateway.routes import health, holds, orders, payments, products
from gateway.rpc import Requester
from shared.bus import Bus
from shared.db.session import make_engine
from shared.settings import Settings, get_settings


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
        try:
            yield
        finally:
            await bus.close()
            await engine.dispose()

    app = FastAPI(
        title="Flash-sale checkout",
        version="0.1.0",
        description=(
            "Sells a limited stock during a flash sale and never sells a unit it does not have. "
            "Errors are application/problem+json (RFC 9457) with a machine-readable `code`."
        ),
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (health, products, holds, orders, payments):
        app.include_router(module.router)
    return app
