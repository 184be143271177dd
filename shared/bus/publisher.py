"""Outgoing messages over aio-pika: confirmed publishes, events and request/reply.

FastStream consumes; this module sends. `broker.request()` serialises concurrent requests
behind one lock, so requests here use an exclusive reply queue per process and a
correlation-id → future map: any number of requests are in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from faststream.rabbit import RabbitExchange
from pydantic import BaseModel

from shared import topology, tracing
from shared.bus.connection import connect, declare_topology
from shared.ids import random_uuid
from shared.metrics import count_publish
from shared.settings import Settings

log = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """The broker did not take the message (down, unroutable, or no confirm in time)."""


class ReplyTimeout(Exception):
    """The command was confirmed by the broker but no reply came before the deadline."""


def encode(message: BaseModel, **properties: Any) -> aio_pika.Message:
    """A persistent JSON AMQP message carrying the model's id and type."""
    message_id = getattr(message, "message_id", None)
    return aio_pika.Message(
        message.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(message_id) if message_id else None,
        type=getattr(message, "type", None),
        **properties,
    )


class Bus:
    """One process's outgoing side: confirmed, mandatory publishes and request/reply."""

    def __init__(self, settings: Settings, process: str) -> None:
        self._settings = settings
        self._process = process
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._notify_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._futures: dict[str, asyncio.Future[bytes]] = {}
        self.reply_queue = topology.reply_queue_name(process)

    async def start(self) -> None:
        """Connect, declare the topology and start listening on the reply queue."""
        self._connection = await connect(self._settings, self._process)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_topology(self._channel, self._settings)
        queue = await self._channel.declare_queue(
            self.reply_queue, exclusive=True, auto_delete=True, durable=False
        )
        await queue.consume(self._on_reply, no_ack=True)
        # events nobody waits for (stock levels): no confirm, the next one supersedes them
        self._notify_channel = await self._connection.channel(publisher_confirms=False)

    async def listen(
        self,
        exchange: RabbitExchange,
        queue_name: str,
        on_message: Callable[[bytes], None],
        on_lost: Callable[[], None],
        on_back: Callable[[], None] | None = None,
    ) -> None:
        """Consume a fanout on an exclusive queue of this process; `on_lost` runs whenever the
        connection drops or comes back (what was published meanwhile never arrives), then
        `on_back` once it is back with the queue and its consumer restored."""
        assert self._connection is not None and self._channel is not None
        queue = await self._channel.declare_queue(
            queue_name,
            exclusive=True,
            auto_delete=True,
            durable=False,
            arguments={"x-max-length": 10_000, "x-overflow": "drop-head"},
        )
        await queue.bind(exchange.name, routing_key="")

        async def deliver(message: AbstractIncomingMessage) -> None:
            on_message(message.body)

        await queue.consume(deliver, no_ack=True)
        self._connection.close_callbacks.add(lambda *_: on_lost())

        def back(*_: object) -> None:
            # one callback, in this order: the callbacks of a collection run in no set order
            on_lost()
            if on_back is not None:
                on_back()

        self._connection.reconnect_callbacks.add(back)

    async def notify(self, message: BaseModel, *, exchange: str, routing_key: str = "") -> None:
        """Publish a transient event without waiting for a confirm; a failure is only logged."""
        channel = self._notify_channel
        if channel is None or channel.is_closed or not self.is_open:
            count_publish(exchange, getattr(message, "type", None) or "", "unavailable")
            return
        kind = getattr(message, "type", None) or type(message).__name__
        try:
            ex = await channel.get_exchange(exchange, ensure=False)
            body = message.model_dump_json().encode()
            await ex.publish(
                aio_pika.Message(body, content_type="application/json", type=kind), routing_key
            )
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            count_publish(exchange, kind, "unavailable")
            log.debug("event not published", extra={"error": repr(exc)})
        else:
            count_publish(exchange, kind, "sent")

    async def close(self) -> None:
        """Fail pending requests and close the connection."""
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(BusUnavailable("bus closed"))
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    @property
    def is_open(self) -> bool:
        """Whether the connection is up right now (a robust connection may be reconnecting)."""
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._futures.get(message.correlation_id or "")
        if fut is not None and not fut.done():
            fut.set_result(message.body)

    async def _exchange(self, name: str) -> AbstractExchange:
        if not self.is_open or self._channel is None:
            raise BusUnavailable("not connected to the broker")
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
        return self._exchanges[name]

    async def publish(
        self,
        message: BaseModel,
        *,
        exchange: str,
        routing_key: str,
        timeout: float = 5.0,
        **properties: Any,
    ) -> None:
        """Publish and wait for the broker's confirm; unroutable or unconfirmed raises."""
        kind = getattr(message, "type", None) or type(message).__name__
        if tracing.enabled:
            with tracing.producer(exchange, routing_key, kind, properties):
                await self._publish(message, exchange, routing_key, timeout, kind, properties)
        else:
            await self._publish(message, exchange, routing_key, timeout, kind, properties)

    async def _publish(
        self,
        message: BaseModel,
        exchange: str,
        routing_key: str,
        timeout: float,
        kind: str,
        properties: dict[str, Any],
    ) -> None:
        outcome = "unavailable"
        try:
            ex = await self._exchange(exchange)
            await asyncio.wait_for(
                ex.publish(encode(message, **properties), routing_key, mandatory=True),
                timeout,
            )
            outcome = "confirmed"
        except BusUnavailable:
            raise
        except TimeoutError as exc:
            outcome = "timeout"
            raise BusUnavailable("no publisher confirm in time") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            outcome = "refused"
            raise BusUnavailable(f"broker refused the message: {exc}") from exc
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise BusUnavailable(f"publish failed: {exc!r}") from exc
        finally:
            count_publish(exchange, kind, outcome)

    async def request(
        self,
        message: BaseModel,
        *,
        exchange: str,
        routing_key: str,
        timeout: float,
        expires: bool = True,
    ) -> bytes:
        """Publish a command with a reply address and wait for the reply's raw body.

        With `expires`, the command also carries the timeout as its AMQP expiration: the broker
        drops it if nobody took it in time (the worker checks the command's own deadline too).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        correlation_id = random_uuid().hex
        fut: asyncio.Future[bytes] = loop.create_future()
        self._futures[correlation_id] = fut
        try:
            await self.publish(
                message,
                exchange=exchange,
                routing_key=routing_key,
                timeout=timeout,
                correlation_id=correlation_id,
                reply_to=self.reply_queue,
                expiration=max(timeout, 0.001) if expires else None,
            )
            remaining = deadline - loop.time()
            try:
                body = await asyncio.wait_for(fut, max(remaining, 0.001))
            except TimeoutError as exc:
                raise ReplyTimeout(f"no reply within {timeout:.1f} s") from exc
            if not body:
                # the worker dropped the command: its deadline had passed
                raise ReplyTimeout("the command was dropped past its deadline")
            return body
        finally:
            self._futures.pop(correlation_id, None)
