"""An AMQP connection that knows every node of a RabbitMQ cluster and moves to a live one.

aio-pika's robust connection reconnects to the one URL it was given. This one rotates through
the cluster's nodes, one attempt per node in turn, waiting between failed attempts with an
exponential back-off and full jitter (0.1 s doubling up to 5 s), and each process visits the
other nodes in an order of its own: the clients of a lost node spread over the survivors
instead of landing on the next one all at once. The first attempt after a loss waits 1–2 s
(AFTER_LOSS_SECONDS). Channels, queues and consumers are restored on
the new node as aio-pika restores them after any reconnection.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
#: After a loss, the first attempt waits a random time in this range: the surviving nodes elect
#: new leaders for the lost node's queues meanwhile (RabbitMQ 3.10 nacks publishes for good on
#: a channel opened to a queue whose leader is still the lost node), and the clients of the
#: lost node arrive spread out, not at once.
AFTER_LOSS_SECONDS = (1.0, 2.0)


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several nodes: each (re)connection attempt takes the next."""

    def __init__(self, urls: list[URL], **kwargs: Any) -> None:
        first, *others = urls
        random.shuffle(others)  # this process's own order of the other nodes
        self._nodes = [first, *others]
        self._attempt = -1  # the next read of `url` by an attempt makes it 0
        self._failures = 0
        self._pause = 0.0
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
            await asyncio.sleep(random.uniform(*AFTER_LOSS_SECONDS))
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        # after a loss the next attempt goes straight to the next node, then backs off
        self._failures = 0
        self._pause = 0.0


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
