"""The broker's users: what each process kind may configure, write and read, and the topology
the operator declares for them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from faststream.rabbit import RabbitExchange

from shared import topology
from shared.roles.common import amqp_user

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection


@dataclass(frozen=True)
class Permissions:
    """RabbitMQ's three regular expressions, matched against exchange and queue names alike."""

    configure: str
    write: str
    read: str


def _any_number(name: str) -> str:
    """A regex of `name` with any number where it has digits (partition, TTL)."""
    return re.sub(r"\d+", r"\\d+", re.escape(name))


def _alternatives(*patterns: str) -> str:
    return "^(" + "|".join(patterns) + ")$"


_PARTITIONS = _any_number(topology.partition_key(0))
_ORDERS = re.escape(topology.ORDERS_QUEUE_NAME)
_PAYMENTS = re.escape(topology.PAYMENTS_QUEUE_NAME)
# The delay exchanges and their queues share a name: binding one means reading the other.
_DELAYS = "|".join(_any_number(d(1)[0].name) for d in (topology.hold_delay, topology.order_delay))
_DEAD_QUEUES = f"({_PARTITIONS}|{_ORDERS}|{_PAYMENTS})\\.dead"
_EXCHANGES = "|".join(
    sorted(re.escape(v.name) for v in vars(topology).values() if isinstance(v, RabbitExchange))
)
#: Workers answer requests through the default exchange, to the requester's reply queue.
_DEFAULT_EXCHANGE = re.escape("amq.default")
_INVENTORY = re.escape(topology.INVENTORY_EXCHANGE.name)
_COMMANDS = re.escape(topology.COMMANDS_EXCHANGE.name)
_LEVELS = re.escape(topology.LEVELS_EXCHANGE.name)

# Every process declares (configure), binds (write on the queue, read on the exchange) the whole
# topology at start-up (shared.bus.declare_topology), whatever it uses of it.
_DECLARED = [_EXCHANGES, _PARTITIONS, _ORDERS, _PAYMENTS, _DEAD_QUEUES, _DELAYS]
_BOUND_QUEUES = [_PARTITIONS, _ORDERS, _PAYMENTS, _DEAD_QUEUES, _DELAYS]
_BOUND_EXCHANGES = [_EXCHANGES, _DELAYS]

_PUBLISHES = {
    "gateway": [_INVENTORY, _COMMANDS],
    "inventory": [_INVENTORY, _LEVELS, _DEFAULT_EXCHANGE],  # hold delays: among the bound names
    "orders": [_INVENTORY, _DEFAULT_EXCHANGE],
    "payments": [_INVENTORY, _DEFAULT_EXCHANGE],
}
_CONSUMES: dict[str, list[str]] = {
    "gateway": [],  # only its own queues: replies, stock levels
    "inventory": [_PARTITIONS],
    "orders": [_ORDERS],
    "payments": [_PAYMENTS],
}


def _own_queues(kind: str) -> str:
    """The exclusive queues a process of `kind` names after itself (replies, stock levels)."""
    prefixes = {
        make(kind).split(".")[0] for make in (topology.reply_queue_name, topology.levels_queue_name)
    }
    return f"({'|'.join(sorted(prefixes))})" + re.escape(f".{kind}.") + ".+"


def broker_permissions(kind: str) -> Permissions:
    """What the broker user of `kind` may configure, write and read (in any virtual host)."""
    own = _own_queues(kind)
    return Permissions(
        configure=_alternatives(*_DECLARED, own),
        write=_alternatives(*_BOUND_QUEUES, own, *_PUBLISHES[kind]),
        read=_alternatives(*_BOUND_EXCHANGES, *_CONSUMES[kind], own),
    )


OPERATOR_PERMISSIONS = Permissions(".*", ".*", ".*")


def provision_broker(
    management_url: str, auth: tuple[str, str], passwords: Mapping[str, str], vhost: str = "/"
) -> None:
    """Create (or update the password of) each kind's user and set its permissions on `vhost`."""
    api = management_url.rstrip("/") + "/api"
    with httpx.Client(auth=auth, timeout=10) as http:
        for kind, password in passwords.items():
            user = quote(amqp_user(kind), safe="")
            body = {"password": password, "tags": ""}
            http.put(f"{api}/users/{user}", json=body).raise_for_status()
        grant_vhost(management_url, auth, vhost, list(passwords), http)


def grant_vhost(
    management_url: str,
    auth: tuple[str, str],
    vhost: str,
    kinds: list[str],
    http: httpx.Client | None = None,
) -> None:
    """Give each kind's user its permissions on `vhost` (e.g. an isolated test vhost)."""
    api = management_url.rstrip("/") + "/api"
    own = http is None
    client = http or httpx.Client(auth=auth, timeout=10)
    try:
        for kind in kinds:
            user = quote(amqp_user(kind), safe="")
            client.put(
                f"{api}/permissions/{quote(vhost, safe='')}/{user}",
                json=asdict(broker_permissions(kind)),
            ).raise_for_status()
    finally:
        if own:
            client.close()


async def declare_topology(amqp_url: str, partitions: int, hold_ttl: int, window: int) -> None:
    """Declare every exchange and queue as the operator, before the processes start."""
    from shared.bus import declare_topology as declare
    from shared.settings import Settings

    settings = Settings(
        amqp_url=amqp_url,
        partitions=partitions,
        hold_ttl_seconds=hold_ttl,
        payment_window_seconds=window,
    )
    connection = await _connect_when_ready(amqp_url)
    async with connection:
        await declare(await connection.channel(), settings)


async def _connect_when_ready(amqp_url: str, wait: float = 30.0) -> AbstractConnection:
    """An operator's connection, retried for `wait` seconds while the broker drops it unopened
    (a node still booting on its old data accepts the socket and closes it); a refused login is
    not retried."""
    import asyncio
    import time

    import aio_pika
    from aio_pika.exceptions import AMQPConnectionError, ProbableAuthenticationError

    deadline = time.monotonic() + wait
    while True:
        try:
            return await aio_pika.connect(amqp_url, timeout=10)
        except ProbableAuthenticationError:
            raise
        except (OSError, asyncio.IncompleteReadError, AMQPConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
