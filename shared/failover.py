"""AMQP connections that know every node of a RabbitMQ cluster and move to a live one.

aio-pika's robust connection reconnects to the one URL it was given. This one rotates through
the cluster's nodes, one attempt per node in turn, waiting between failed attempts with an
exponential back-off and full jitter (0.1 s doubling up to 5 s), and each process visits the
other nodes in an order of its own: the clients of a lost node spread over the survivors
instead of landing on the next one all at once. The first attempt after a loss waits 1–2 s
(AFTER_LOSS_SECONDS). Channels, queues and consumers are restored on
the new node as aio-pika restores them after any reconnection. The gateway's and the workers'
publishing connections use `connect_failover`; the workers' FastStream consumers `ClusterBroker`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from faststream.rabbit import RabbitBroker
from yarl import URL

BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
#: After a loss, the first attempt waits a random time in this range: the surviving nodes elect
#: new leaders for the lost node's queues meanwhile (RabbitMQ 3.10 nacks publishes for good on
#: a channel opened to a queue whose leader is still the lost node), and the clients of the
#: lost node arrive spread out, not at once.
AFTER_LOSS_SECONDS = (1.0, 2.0)

log = logging.getLogger(__name__)


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several nodes: each (re)connection attempt takes the next."""

    def __init__(self, urls: list[URL], **kwargs: Any) -> None:
        first, *others = urls
        random.shuffle(others)  # this process's own order of the other nodes
        self._nodes = [first, *others]
        self._attempt = -1  # the next read of `url` by an attempt makes it 0
        self._failures = 0
        self._pause = 0.0
        self._lost_at: float | None = None
        self._rotating = False
        super().__init__(first, **kwargs)
        self._rotating = True

    # aio-pika reads `url` exactly once per connection attempt (Connection.connect), so the
    # attempt moves to the next node here; __str__ below does not read it.
    @property
    def url(self) -> URL:
        if not self._rotating:
            return self._nodes[0]
        self._attempt += 1
        if self._attempt > 0:
            self._failures += 1
            ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (self._failures - 1))
            self._pause = random.uniform(0, ceiling)
        return self._nodes[self._attempt % len(self._nodes)]

    @url.setter
    def url(self, value: URL) -> None:
        if self._rotating:  # a new secret: every node's URL gets it
            self._nodes = [u.with_password(value.password) for u in self._nodes]
        else:
            self._nodes[0] = URL(value)

    @property
    def reconnect_interval(self) -> float:
        """The pause after a failed attempt (aio-pika sleeps it between attempts)."""
        return self._pause

    @reconnect_interval.setter
    def reconnect_interval(self, _value: float) -> None:
        pass  # the back-off above replaces the fixed interval

    @property
    def node(self) -> URL:
        """The node of the current (or last) attempt, without reading `url`."""
        return self._nodes[max(self._attempt, 0) % len(self._nodes)]

    def __str__(self) -> str:
        node = self.node
        return str(node.with_password("******") if node.password else node)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if not self._close_called:
            self._lost_at = self._lost_at or time.monotonic()
            await asyncio.sleep(random.uniform(*AFTER_LOSS_SECONDS))
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()  # channels and consumers restored, or it raises
        # after a loss the next attempt goes straight to the next node, then backs off
        self._failures = 0
        self._pause = 0.0
        if self._lost_at is not None:
            log.info(
                "broker connection restored",
                extra={
                    "node": f"{self.node.host}:{self.node.port}",
                    "connection": self.node.query.get("name")
                    or self.kwargs.get("client_properties", {}).get("connection_name", ""),
                    "after_s": round(time.monotonic() - self._lost_at, 2),
                },
            )
            self._lost_at = None


async def connect_failover(
    urls: list[str], timeout: float = 10, **kwargs: Any
) -> AbstractRobustConnection:
    """Connect to the first node that answers (the first URL first); keep reconnecting to any
    of them. Fails when no node answers within `timeout` per node."""
    connection = FailoverConnection([URL(u) for u in urls], fail_fast="0", **kwargs)
    try:
        await asyncio.wait_for(connection.connect(timeout=timeout), timeout * len(urls))
    except BaseException:
        await connection.close()
        raise
    return connection


def node_urls(first: str, others: str) -> list[str]:
    """Every node's URL: `first` (FLASHSALE_AMQP_URL), then the comma-separated `others`
    (FLASHSALE_AMQP_FAILOVER_URLS)."""
    return [first, *(u.strip() for u in others.split(",") if u.strip())]


def _connection_class(others: list[str]) -> Callable[..., FailoverConnection]:
    """A `connection_class` for aio-pika's `connect_robust` (which FastStream's broker calls):
    the URL it builds is the first node, `others` are the rest of the cluster."""

    def make(url: URL, **kwargs: Any) -> FailoverConnection:
        return FailoverConnection([URL(url), *(URL(u) for u in others)], **kwargs)

    return make


#: Seconds one connection attempt to one node may take.
CONNECT_TIMEOUT_SECONDS = 10.0


class ClusterBroker(RabbitBroker):
    """A FastStream broker whose connection knows every node of the cluster: it starts on the
    first node that answers and, when its node dies, moves to a live one with back-off and
    jitter (FailoverConnection); aio-pika then restores its channels and consumers there, and
    single active consumer hands each partition to whichever consumer is left. On one node,
    FastStream's own connection."""

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        first, *self._others = urls
        super().__init__(
            first, fail_fast=not self._others, timeout=CONNECT_TIMEOUT_SECONDS, **kwargs
        )

    async def _connect(self) -> aio_pika.RobustConnection:
        if not self._others:
            return await super()._connect()
        made: list[AbstractRobustConnection] = []
        factory = _connection_class(self._others)

        def make(url: URL, **kwargs: Any) -> AbstractRobustConnection:
            made.append(factory(url, **kwargs))
            return made[-1]

        self._connection_kwargs["connection_class"] = make
        nodes = 1 + len(self._others)
        try:  # no node answered in a whole round: fail the start, as on one node
            return await asyncio.wait_for(super()._connect(), CONNECT_TIMEOUT_SECONDS * nodes)
        except BaseException:
            for connection in made:
                await connection.close()
            raise
