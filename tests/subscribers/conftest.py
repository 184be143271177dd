"""A worker's FastStream subscribers in process: FastStream's TestRabbitBroker in place of
RabbitMQ, the worker's own Bus (its follow-up publishes) recorded, and the handler that loads,
decides and writes faked where a test says what it decides (the handlers themselves are tested
against the real database by the integration and end-to-end tests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from faststream.rabbit import RabbitBroker, RabbitExchange, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topology
from shared.bus import Bus, encode
from shared.settings import Settings
from shared.worker import WorkerContext
from tests.api.conftest import NoDatabase, settings_of


@dataclass
class Published:
    message: BaseModel
    exchange: str
    routing_key: str


@dataclass
class RecordingBus:
    """The worker's outgoing side: what it publishes after its commit."""

    published: list[Published] = field(default_factory=list)
    #: transient events (stock levels), sent without a confirm
    notified: list[Published] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return True

    async def publish(
        self, message: BaseModel, *, exchange: str, routing_key: str, **kw: Any
    ) -> None:
        self.published.append(Published(message, exchange, routing_key))

    async def notify(self, message: BaseModel, *, exchange: str, routing_key: str = "") -> None:
        self.notified.append(Published(message, exchange, routing_key))

    async def close(self) -> None:
        """Nothing to close."""


@dataclass
class Worker:
    """One worker's subscribers on a test broker."""

    broker: RabbitBroker
    bus: RecordingBus
    ctx: WorkerContext
    queue: str
    #: what reached the dead queue: each body and its headers (the reason among them)
    dead: list[tuple[bytes, dict[str, Any]]]

    #: where the gateway publishes this worker's commands
    exchange: RabbitExchange = topology.COMMANDS_EXCHANGE

    async def send(self, command: BaseModel, **properties: Any) -> bytes:
        """Deliver a command as the gateway's Bus encodes it; the worker's raw reply."""
        reply = await self.broker.request(
            encode(command, **properties),
            queue=self.queue,
            exchange=self.exchange,
            timeout=5,
        )
        body: bytes = reply.body
        return body

    async def deliver(self, command: BaseModel) -> None:
        """Deliver a command nobody waits for; a failure of the subscriber (after it settled
        the message) is what the broker sees, not the test."""
        with contextlib.suppress(Exception):
            await self.broker.publish(encode(command), queue=self.queue, exchange=self.exchange)


Register = Callable[[RabbitBroker, WorkerContext], None]


@asynccontextmanager
async def subscribed(
    name: str,
    register: Register,
    queue: str,
    settings: Settings | None = None,
    exchange: RabbitExchange = topology.COMMANDS_EXCHANGE,
) -> AsyncIterator[Worker]:
    """The worker `name`'s subscribers, registered as its process does, on a test broker."""
    settings = settings or settings_of(transient_retry_seconds=0)
    broker = RabbitBroker()
    bus = RecordingBus()
    ctx = WorkerContext(
        name=name,
        settings=settings,
        _engine=cast(AsyncEngine, NoDatabase()),
        _bus=cast(Bus, bus),
    )
    register(broker, ctx)

    dead: list[tuple[bytes, dict[str, Any]]] = []

    @broker.subscriber(topology.dead_queue(queue).name)  # by name, as dead_letter routes
    async def keep(body: Any, message: RabbitMessage) -> None:
        """What an operator finds in the dead queue."""
        dead.append((message.body, dict(message.headers)))

    async with TestRabbitBroker(broker) as test_broker:
        ctx.started = True
        yield Worker(test_broker, bus, ctx, queue, dead, exchange)
