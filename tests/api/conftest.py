"""The gateway's ASGI application in process, as the server runs it (the fast lane in front of
the FastAPI app), with the broker faked at its boundary (tests.api.fakes.FakeBus) and a
database that is not there: a route that reads it answers its outage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.availability import Streams
from gateway.fastlane import FastLane
from gateway.product_reads import ProductReads
from gateway.rpc import Requester
from shared.bus import Bus
from shared.settings import Settings
from tests.api.fakes import FakeBus
from tests.harness import ADMIN_TOKEN, WEBHOOK_SECRETS

#: Storefront keys of the gateways that require them (`keyed` below).
SHOP_KEY = "shop-key-0123456789"
OTHER_KEY = "other-key-0123456789"
STOREFRONT_KEYS = [f"shop:{SHOP_KEY}", f"other:{OTHER_KEY}"]


class NoDatabase:
    """An engine whose server is away: every connection is refused."""

    def connect(self) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed")

    def begin(self) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed")


@dataclass
class Gateway:
    """One gateway process in memory: its HTTP client, its fake broker, its requester."""

    client: httpx.AsyncClient
    bus: FakeBus
    requester: Requester
    settings: Settings
    #: what the server runs: its `wire_hold` is the HTTP server's own path for the common hold
    lane: FastLane


def settings_of(**overrides: Any) -> Settings:
    """A test gateway's settings (the tests' secrets, no environment needed)."""
    values: dict[str, Any] = {
        "env": "test",
        "admin_token": ADMIN_TOKEN,
        "webhook_secrets": WEBHOOK_SECRETS,
        "request_timeout_seconds": 2.0,
        "hold_batch_wait_ms": 0.0,
        "customer_rate_per_second": 0,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings, max_in_flight: int = 5000) -> AsyncIterator[Gateway]:
    """A gateway made as its lifespan makes it, with the fake bus and no database."""
    app = create_app(settings)
    bus = FakeBus()
    engine = cast(AsyncEngine, NoDatabase())
    requester = Requester(cast(Bus, bus), settings, max_in_flight=max_in_flight)
    await requester.start()
    app.state.settings = settings
    app.state.engine = engine
    app.state.requester = requester
    app.state.reads = ProductReads(engine, requester.snapshot)
    app.state.streams = Streams(
        requester.snapshot, app.state.reads, settings.max_streams, settings.stream_heartbeat_seconds
    )
    lane = FastLane(app)
    transport = httpx.ASGITransport(app=lane)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(client, bus, requester, settings, lane)
    finally:
        app.state.streams.close()


MakeGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """A development-like gateway: no storefront keys."""
    async with running(settings_of()) as gw:
        yield gw


@pytest.fixture
async def keyed() -> AsyncIterator[Gateway]:
    """A gateway that requires storefront keys."""
    async with running(settings_of(storefront_keys=STOREFRONT_KEYS)) as gw:
        yield gw


@pytest.fixture
def make_gateway() -> MakeGateway:
    """A gateway with other settings: `async with make_gateway(max_qty_per_hold=3) as gw`."""

    def make(max_in_flight: int = 5000, **overrides: Any) -> AbstractAsyncContextManager[Gateway]:
        return running(settings_of(**overrides), max_in_flight)

    return make
